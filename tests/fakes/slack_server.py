"""A stand-in for Slack on loopback: the Web API methods the bot uses, response_url
endpoints, and a Socket Mode WebSocket.

It records every call, keeps posted messages so chat.update can change them, checks
Home views (views.publish) against Slack's limits, answers usergroups.users.list from
`groups`, and can be told to fail a method, hold its answers until released, or drop
the connection instead of answering.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loopback import LoopbackServer

BOT_USER = "UBOTUSER1"
TEAM = "T0TEAM001"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str
    answer: dict[str, Any] = field(default_factory=dict)
    stalled: bool = False  # never answered: as if Slack hung and the caller died
    at: float = field(default_factory=time.perf_counter)  # arrival, for benchmarks


@dataclass
class Failure:
    error: str
    status: int = 200
    retry_after: int | None = None
    when: Callable[[dict[str, Any]], bool] | None = None  # None: whatever the call


@dataclass
class FakeSlack(LoopbackServer):
    bot_token: str = "xoxb-test-bot-token"
    app_token: str = "xapp-test-app-token"
    groups: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    held: list[Call] = field(default_factory=list)  # waiting for release(), in order
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()
        self._failures: dict[str, deque[Failure]] = {}
        self._stalls: list[tuple[str, Callable[[dict[str, Any]], bool]]] = []
        self._holds: dict[str, asyncio.Event] = {}
        self._drops: dict[str, int] = {}
        self._lost: dict[str, int] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}  # channel → top-level messages
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, name: str) -> str:
        return f"{self.url}/response/{name}"

    # --- what tests arrange and inspect -------------------------------------------------
    def fail(self, method: str, error: str, times: int = 1, *, status: int = 200,
             retry_after: int | None = None,
             when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """The next `times` calls to `method` (only those matching `when`, if given) fail
        with `error`."""
        queue = self._failures.setdefault(method, deque())
        queue.extend(Failure(error, status, retry_after, when) for _ in range(times))

    def stall(self, method: str,
              when: Callable[[dict[str, Any]], bool] = lambda args: True) -> None:
        """Matching calls are recorded but never answered (until the caller gives up)."""
        self._stalls.append((method, when))

    def unstall(self) -> None:
        self._stalls.clear()

    def heal(self) -> None:
        """Slack is well again: no more failures, drops, lost answers or stalls."""
        self._failures.clear()
        self._drops.clear()
        self._lost.clear()
        self._stalls.clear()

    def hold(self, method: str) -> None:
        """Calls to `method` wait unanswered until release(), then are answered as usual:
        lets a test line up concurrent callers behind one slow call."""
        self._holds[method] = asyncio.Event()

    def release(self) -> None:
        for gate in self._holds.values():
            self._loop.call_soon_threadsafe(gate.set)
        self._holds.clear()

    def drop(self, method: str, times: int = 1) -> None:
        """The next `times` calls to `method` get their connection closed, no answer."""
        self._drops[method] = self._drops.get(method, 0) + times

    def lose_answer(self, method: str, times: int = 1) -> None:
        """The next `times` calls to `method` take effect (a message is posted), but the
        connection closes before the answer: the caller can't know it worked."""
        self._lost[method] = self._lost.get(method, 0) + times

    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and not call.stalled]

    def stalled(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and call.stalled]

    def summary(self) -> list[str]:
        return [c.method for c in self.calls] + [f"response:{n}" for n, _ in self.responses]

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Top-level messages posted (not thread replies), in order."""
        return [c.args for c in self.called("chat.postMessage") if c.answer.get("ok")
                and "thread_ts" not in c.args and channel in (None, c.args.get("channel"))]

    def dms(self, user: str | None = None) -> list[dict[str, Any]]:
        """Direct messages the bot sent (chat.postMessage to a user ID), in order."""
        return [c.args for c in self.called("chat.postMessage") if c.answer.get("ok")
                and str(c.args.get("channel", "")).startswith(("U", "W"))
                and user in (None, c.args.get("channel"))]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        return [c.args for c in self.called("chat.postMessage")
                if c.answer.get("ok") and c.args.get("thread_ts") == ts]

    def published(self, user: str | None = None) -> list[dict[str, Any]]:
        """Home views the bot published (views.publish taken), in order; for one user."""
        return [c.args["view"] for c in self.called("views.publish") if c.answer.get("ok")
                and user in (None, c.args.get("user_id"))]

    def responses_to(self, name: str) -> list[dict[str, Any]]:
        return [body for n, body in self.responses if n == name]

    @property
    def connected(self) -> bool:
        return bool(self._sockets)

    def drop_sockets(self) -> None:
        """Close every Socket Mode connection from Slack's side, as a deploy of theirs does."""
        async def close() -> None:
            for ws in list(self._sockets):
                await ws.close()
        self.call(close())

    def send_envelope(self, envelope: dict[str, Any]) -> None:
        async def send() -> None:
            for ws in self._sockets:
                await ws.send_json(envelope)
        self.call(send())

    # --- the server ---------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_get("/socket", self._socket)
        return app

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.can_read_body:
            args.update(await request.post())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        call = Call(method, args, token)
        if any(m == method and when(args) for m, when in self._stalls):
            call.stalled = True
            self._record(call, self.calls)
            await asyncio.Event().wait()  # hang until the connection goes away
        if self._drops.get(method):
            self._drops[method] -= 1
            call.stalled = True  # never answered, like a stalled call
            self._record(call, self.calls)
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # nothing can be sent: the connection is gone
        if gate := self._holds.get(method):
            self._record(call, self.held)
            await gate.wait()
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        status, headers = 200, {}
        if token != expected:
            call.answer = {"ok": False, "error": "invalid_auth"}
        elif failure := self._next_failure(method, args):
            call.answer = {"ok": False, "error": failure.error}
            status = failure.status
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
        else:
            call.answer = {"ok": True, **self._answer(method, args)}
        self._record(call, self.calls)
        if self._lost.get(method):
            self._lost[method] -= 1
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # done, but the answer never leaves
        return web.json_response(call.answer, status=status, headers=headers)

    def _next_failure(self, method: str, args: dict[str, Any]) -> Failure | None:
        """The first failure queued for `method` that applies to this call, taken off."""
        queue = self._failures.get(method, deque())
        for index, failure in enumerate(list(queue)):  # tests append meanwhile
            if failure.when is None or failure.when(args):
                del queue[index]
                return failure
        return None

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"user_id": BOT_USER, "team_id": TEAM, "bot_id": "B0BOT0001",
                    "user": "autorepay", "team": "Test", "url": "https://test.slack.com/"}
        if method == "chat.postMessage":
            ts = f"{1_700_000_000 + next(self._ts)}.000100"
            message = {"type": "message", "text": args.get("text"), "ts": ts,
                       "bot_id": "B0BOT0001", "user": BOT_USER}
            if "thread_ts" not in args:
                stored = {**message, "metadata": args.get("metadata")}
                self.history.setdefault(str(args.get("channel")), []).append(stored)
            return {"channel": args.get("channel"), "ts": ts, "message": message}
        if method == "conversations.history":
            # Slack's order: newest first. (This stand-in's ts are not real times, so
            # `oldest` is not applied.) Metadata only when asked for.
            messages = list(reversed(self.history.get(str(args.get("channel")), [])))
            if args.get("include_all_metadata") not in ("1", "true", True, 1):
                messages = [{k: v for k, v in m.items() if k != "metadata"} for m in messages]
            return {"messages": messages, "has_more": False}
        if method == "chat.update":
            return {"channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"message_ts": f"{1_700_000_000 + next(self._ts)}.000200"}
        if method == "views.publish":
            view = args.get("view")
            if not isinstance(view, dict) or not home_view_fits(view):
                return {"ok": False, "error": "invalid_arguments"}
            return {"view": {**view, "id": f"V{next(self._ts):08d}"}}
        if method == "usergroups.users.list":
            return {"users": self.groups.get(str(args.get("usergroup")), [])}
        if method == "apps.connections.open":
            return {"url": f"ws://127.0.0.1:{self.port}/socket"}
        return {}

    async def _response_url(self, request: web.Request) -> web.Response:
        self._record((request.match_info["name"], await request.json()), self.responses)
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._record(ws, self._sockets)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "loopback"},
                            "connection_info": {"app_id": "A0APP0001"}})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self._record(json.loads(message.data), self.socket_acks)
        self._sockets.remove(ws)
        return ws


def home_view_fits(view: Any) -> bool:
    """Slack's limits for a Home view: at most 100 blocks, section texts up to 3 000
    characters, a header up to 150."""
    if not isinstance(view, dict) or view.get("type") != "home":
        return False
    blocks = view.get("blocks") or []
    limits = {"section": 3000, "header": 150}
    return len(blocks) <= 100 and all(
        len(block.get("text", {}).get("text", "")) <= limits.get(block["type"], 3000)
        for block in blocks)
