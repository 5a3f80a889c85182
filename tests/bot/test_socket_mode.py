"""Socket Mode: the stand-in hands out a ws:// loopback URL, says hello, then sends
a slash-command envelope and an interactive envelope. The bot acks each and does the
same work as over HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot.app import build
from bot.config import Settings
from bot.lifecycle import serve_socket_mode
from handlers.blocks import APPROVE
from okx import RetryPolicy
from tests.bot.conftest import ALICE, APPROVALS, BOB, OKX_ENV, OPS, WallClock, live
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_requests import block_action, slash_command
from tests.fakes.slack_server import FakeSlack


class SocketBot:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop_event: asyncio.Event | None = None

    def _run(self) -> None:
        async def main() -> None:
            self.stop_event = asyncio.Event()
            runtime = await build(self.settings, dict(OKX_ENV), clock=WallClock(),
                                  retry=RetryPolicy(base_delay=0.01))
            await serve_socket_mode(runtime, self.stop_event)
        self.loop.run_until_complete(main())

    def stop(self) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def socket_bot(settings: Settings, slack: FakeSlack) -> Iterator[SocketBot]:
    bot = SocketBot(replace(settings, slack_app_token=slack.app_token,
                            slack_signing_secret=""))
    bot.thread.start()
    slack.wait_for(lambda: slack.called("apps.connections.open") and slack.connected)
    yield bot
    bot.stop()


def envelope(envelope_id: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind == "slash_commands", "retry_attempt": 0,
            "retry_reason": ""}


def acked(slack: FakeSlack, envelope_id: str) -> dict[str, Any]:
    found = slack.wait_for(
        lambda: [a for a in slack.socket_acks if a.get("envelope_id") == envelope_id])
    return found[0]  # type: ignore[no-any-return]


def test_socket_mode_does_the_same_work(socket_bot: SocketBot, slack: FakeSlack,
                                        okx: FakeOkx) -> None:
    assert slack.called("apps.connections.open")[0].token == slack.app_token
    command = dict(parse_qsl(slash_command("on", ALICE, OPS, slack.response_url("s1"))))
    slack.send_envelope(envelope("env-1", "slash_commands", command))
    ack = acked(slack, "env-1")
    assert "Checking *live* (LIVE)" in str(ack.get("payload"))
    posted = slack.wait_for(lambda: [c for c in slack.called("chat.postMessage")
                                     if c.args.get("channel") == APPROVALS])
    ts, message = posted[0].answer["ts"], posted[0].args
    slack.wait_for(lambda: slack.responses_to("s1"))  # as a person: click once it's shown
    click = block_action(BOB, APPROVALS, ts, message, APPROVE, slack.response_url("s2"))
    slack.send_envelope(envelope("env-2", "interactive", click))
    acked(slack, "env-2")
    thread = slack.wait_for(lambda: slack.thread(ts))
    assert "now *ON*" in thread[0]["text"]
    assert live(okx).auto_repay is True


def test_a_dropped_connection_is_opened_again_and_work_goes_on(
        socket_bot: SocketBot, slack: FakeSlack, okx: FakeOkx,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    slack.drop_sockets()
    slack.wait_for(lambda: len(slack.called("apps.connections.open")) >= 2 and slack.connected)
    command = dict(parse_qsl(slash_command("status", ALICE, OPS, slack.response_url("s3"))))
    slack.send_envelope(envelope("env-3", "slash_commands", command))
    acked(slack, "env-3")
    assert "OFF" in str(slack.wait_for(lambda: slack.responses_to("s3")))
    assert "connected to Slack (Socket Mode)" in caplog.text  # our way of reconnecting
    assert "Traceback" not in caplog.text
