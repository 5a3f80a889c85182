"""The whole bot over real HTTP: Slack stand-in, loopback OKX, the bot's own web server.

Tests drive it as Slack would (signed requests), and read what it did from the stand-in
and the OKX server. At the end of each test, no secret may appear in any log line or
anything sent to Slack.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiohttp import web

from bot.app import Runtime, build, http_app
from bot.config import Settings
from bot.connections import ConnectionGuard
from bot.http_server import BODY_SECONDS, HEADER_SECONDS, HttpServer
from bot.store import Store
from handlers.blocks import APPROVE
from okx import RetryPolicy
from tests.fakes.loopback import LoopbackServer
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_requests import (
    block_action,
    find_action,
    form_payload,
    signed_headers,
    slash_command,
)
from tests.fakes.slack_server import FakeSlack

ALICE = "U0ALICE01"  # requester (and approver, to test self-approval)
BOB = "U0BOB0001"  # approver
CAROL = "U0CAROL01"  # approver
DAVE = "U0DAVE001"  # requester through the S0TRADERS user group
MALLORY = "U0MALLORY"  # nobody
OPS = "C0OPS0001"
APPROVALS = "C0APPROVE"
SIGNING_SECRET = "signing-secret-never-shown"
OKX_ENV = {
    "OKX_API_KEY": "live-key-1111", "OKX_API_SECRET": "LIVE-SECRET-never-shown",
    "OKX_API_PASSPHRASE": "LIVE-PASS-never-shown",
    "OKX_DEMO_API_KEY": "demo-key-2222", "OKX_DEMO_API_SECRET": "DEMO-SECRET-never-shown",
    "OKX_DEMO_API_PASSPHRASE": "DEMO-PASS-never-shown",
}
SECRETS = [SIGNING_SECRET, "xoxb-test-bot-token", "xapp-test-app-token",
           *(v for k, v in OKX_ENV.items() if "KEY" not in k)]


class WallClock:
    """The bot's wall clock: real time, plus however far a test has moved it forward (to
    expire requests). It keeps running, so retries the worker schedules come due."""

    def __init__(self) -> None:
        self.offset = 0.0

    @property
    def now(self) -> float:
        return time.time() + self.offset

    @now.setter
    def now(self, value: float) -> None:
        self.offset = value - time.time()

    def __call__(self) -> float:
        return self.now


class BotServer(LoopbackServer):
    """The bot's own HTTP server (connection guard included) on loopback. The runtime is
    built on the server's own loop, as `python -m bot` builds it on its loop."""

    def __init__(self, make_runtime: Callable[[], Awaitable[Runtime]], *,
                 max_connections: int = 256, header_seconds: float = HEADER_SECONDS,
                 body_seconds: float = BODY_SECONDS, sweep_every: float | None = None,
                 slack_timeout: float | None = None) -> None:
        super().__init__()
        self.sweep_every = sweep_every  # None: tests sweep expiry themselves
        self.slack_timeout = slack_timeout  # seconds before a hung Slack call fails
        self._make_runtime = make_runtime
        self._runtime: Runtime | None = None
        self.guard = ConnectionGuard(max_connections=max_connections,
                                     header_seconds=header_seconds)
        self.body_seconds = body_seconds
        self.http_server: HttpServer | None = None

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None
        return self._runtime

    def build_app(self) -> web.Application:
        async def start(_: web.Application) -> None:
            if self.slack_timeout is not None:
                self.runtime.app.client.timeout = int(self.slack_timeout)
            await self.runtime.start(sweep_every=self.sweep_every)

        async def stop(_: web.Application) -> None:
            await self.runtime.stop()

        app = http_app(self.runtime, self.guard, body_seconds=self.body_seconds)
        app.on_startup.append(start)
        app.on_cleanup.append(stop)
        return app

    async def _serve(self, sock: socket.socket) -> None:
        self._runtime = await self._make_runtime()
        self.http_server = HttpServer(self.build_app(), sock, self.guard)
        await self.http_server.start()

    async def _shutdown(self) -> None:
        if self.http_server is not None:
            await self.http_server.stop()


@dataclass
class Harness:
    slack: FakeSlack
    okx: FakeOkx
    settings: Settings
    environ: dict[str, str]
    clock: WallClock
    server: BotServer | None = None

    def __post_init__(self) -> None:
        self._names = itertools.count(1)
        self.http = httpx.Client(timeout=10)

    # --- life cycle ---------------------------------------------------------------------
    def start(self, server: dict[str, Any] | None = None, **changes: Any) -> Harness:
        """Build and serve the bot; `server` holds BotServer options (limits)."""
        if changes:
            self.settings = replace(self.settings, **changes)
        def make_runtime() -> Awaitable[Runtime]:
            return build(self.settings, self.environ, clock=self.clock,
                         retry=RetryPolicy(base_delay=0.01, max_delay=0.05, deadline=5.0))

        self.server = BotServer(make_runtime, **(server or {}))
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def runtime(self) -> Runtime:
        assert self.server is not None
        return self.server.runtime

    @property
    def store(self) -> StoreOnLoop:
        """The bot's store, its coroutines run on the bot's loop and waited for."""
        assert self.server is not None
        return StoreOnLoop(self.server, self.runtime.service.store)

    @property
    def events_url(self) -> str:
        assert self.server is not None
        return self.server.url + "/slack/events"

    # --- acting as Slack ----------------------------------------------------------------
    def post(self, body: str, *, secret: str = SIGNING_SECRET,
             timestamp: int | None = None) -> httpx.Response:
        return self.http.post(self.events_url, content=body,
                              headers=signed_headers(secret, body, timestamp))

    def command(self, text: str, user: str = ALICE, channel: str = OPS) -> Reply:
        name = f"cmd{next(self._names)}"
        url = self.slack.response_url(name)
        return Reply(self, name, self.post(slash_command(text, user, channel, url)))

    def approval_message(self, index: int = -1) -> tuple[str, dict[str, Any]]:
        """(ts, args) of a posted approval message, waiting for it if need be."""
        posts = self.slack.wait_for(lambda: self.slack.posted(APPROVALS))
        call = [c for c in self.slack.called("chat.postMessage")
                if c.args in posts][index]
        return str(call.answer["ts"]), call.args

    def click(self, user: str, action_id: str, index: int = -1) -> Reply:
        ts, message = self.approval_message(index)
        self._until_recorded(ts, message)
        name = f"click{next(self._names)}"
        payload = block_action(user, APPROVALS, ts, message, action_id,
                               self.slack.response_url(name))
        return Reply(self, name, self.post(form_payload(payload)))

    def _until_recorded(self, ts: str, message: dict[str, Any]) -> None:
        """A person clicks a message they have seen: by then the bot has recorded it.
        (A click within microseconds of the post is not something Slack can deliver.)"""
        request_id = find_action(message.get("blocks", []), APPROVE)["value"]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            request = self.store.get(request_id)
            if request is None or request.approval_ts == ts or \
                    request.status.value != "pending":
                return

    def clicks(self, users: list[str], action_id: str) -> list[Reply]:
        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            return list(pool.map(lambda u: self.click(u, action_id), users))

    def thread_replies(self, count: int = 1) -> list[dict[str, Any]]:
        ts, _ = self.approval_message()
        return self.slack.wait_for(  # type: ignore[no-any-return]
            lambda: (r := self.slack.thread(ts)) and len(r) >= count and r)

    def until(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll the bot's own state (its store) until `condition()` is truthy."""
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            assert time.monotonic() < deadline, "timed out waiting for the bot"
            time.sleep(0.01)  # the bot's work runs on its own loop; nothing to wait on
        return result

    def expire(self, seconds: float) -> None:
        self.clock.now += seconds
        assert self.server is not None
        self.server.call(self.runtime.service.expire_due())


@dataclass
class StoreOnLoop:
    """`bot.store.audit_events()` from a test thread: the call runs on the bot's loop."""

    server: LoopbackServer
    store: Store

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)
        return lambda *args, **kwargs: self.server.call(method(*args, **kwargs))


@dataclass
class Reply:
    """The HTTP answer to one request Slack sent, and what came later on its response_url."""

    harness: Harness
    name: str
    response: httpx.Response

    @property
    def ack_text(self) -> str:
        return self.response.json().get("text", "") if self.response.content else ""

    def followup(self, count: int = 1) -> str:
        slack = self.harness.slack
        bodies = slack.wait_for(lambda: len(b := slack.responses_to(self.name)) >= count and b)
        return str(bodies[count - 1]["text"])


def everything_said(slack: FakeSlack) -> str:
    return json.dumps([[c.method, c.args] for c in slack.calls] + slack.responses)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack(groups={"S0TRADERS": [DAVE]})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def okx(okx_server: FakeOkx) -> FakeOkx:
    okx_server.add_account(api_key=OKX_ENV["OKX_API_KEY"], secret=OKX_ENV["OKX_API_SECRET"],
                           passphrase=OKX_ENV["OKX_API_PASSPHRASE"])
    okx_server.add_account(api_key=OKX_ENV["OKX_DEMO_API_KEY"],
                           secret=OKX_ENV["OKX_DEMO_API_SECRET"],
                           passphrase=OKX_ENV["OKX_DEMO_API_PASSPHRASE"], demo=True,
                           uid="900000000001", label="demo-desk")
    return okx_server


@pytest.fixture
def settings(slack: FakeSlack, okx: FakeOkx, tmp_path: Path, database: Path | str
             ) -> Settings:
    return Settings(
        slack_bot_token=slack.bot_token, slack_signing_secret=SIGNING_SECRET,
        slack_app_token="", slack_api_url=slack.api_url, approval_channel=APPROVALS,
        requesters=(ALICE, "S0TRADERS"), approvers=(BOB, CAROL, ALICE),
        db_path=database if isinstance(database, Path) else tmp_path / "autorepay.db",
        database_url=database if isinstance(database, str) else "", okx_base_url=okx.url)


@pytest.fixture
def harness(slack: FakeSlack, okx: FakeOkx, settings: Settings,
            caplog: pytest.LogCaptureFixture) -> Iterator[Harness]:
    caplog.set_level("DEBUG")
    h = Harness(slack, okx, settings, dict(OKX_ENV), WallClock())
    yield h
    h.stop()
    h.http.close()
    said = everything_said(slack) + caplog.text
    for secret in [*SECRETS, *database_secrets(h.settings)]:
        assert secret not in said, "a secret reached Slack or the logs"
    leaked = operator_text(everything_said(slack))
    assert not leaked, f"operator text reached Slack (it belongs in the log): {leaked}"


def database_secrets(settings: Settings) -> list[str]:
    """The database password (wherever the URL holds one), as written and encoded."""
    return [form for secret in settings.database.secrets
            for form in (secret, quote(secret, safe=""))]


# What only an operator can act on: it goes to the log, never to traders (SPEC §3.9).
OPERATOR_TEXT = re.compile(
    r"\b(?:OKX|SLACK|AUTOREPAY)_[A-Z0-9_]+"  # environment variable names
    r"|\bPORT="
    r"|python -m bot"
    r"|\b[A-Z][a-zA-Z]+(?:Error|Exception)\b"  # Python exception class names
    r"|Traceback")


def operator_text(said: str) -> list[str]:
    """Every piece of operator text in what the bot sent to Slack (`everything_said`)."""
    text = "\n".join(strings(json.loads(said)))  # unescaped: "\\nKeyError" is not "nKeyError"
    return sorted({match.group() for match in OPERATOR_TEXT.finditer(text)})


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


@pytest.fixture
def bot(harness: Harness) -> Harness:
    return harness.start()


def live(okx: FakeOkx) -> Any:
    return okx.accounts[OKX_ENV["OKX_API_KEY"]]


def demo(okx: FakeOkx) -> Any:
    return okx.accounts[OKX_ENV["OKX_DEMO_API_KEY"]]
