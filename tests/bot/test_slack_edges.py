"""Requests Slack would never send as they are: bad signatures, bad text, socket mode."""

from __future__ import annotations

import json
import time

from tests.bot.conftest import APPROVALS, OPS, Harness
from tests.fakes.slack_requests import slash_command


def body(bot: Harness, text: str = "on") -> str:
    return slash_command(text, "U0ALICE01", OPS, bot.slack.response_url("x"))


def test_forged_signature_is_401_and_does_nothing(bot: Harness) -> None:
    response = bot.post(body(bot), secret="not-the-signing-secret")
    assert response.status_code == 401
    assert bot.okx.requests == [] and bot.slack.posted() == []


def test_stale_signature_is_401(bot: Harness) -> None:
    response = bot.post(body(bot), timestamp=int(time.time()) - 600)
    assert response.status_code == 401
    assert bot.okx.requests == []


def test_unsigned_request_is_401(bot: Harness) -> None:
    response = bot.http.post(bot.events_url, content=body(bot),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401


def test_malformed_text_gets_usage_naming_the_problem(bot: Harness) -> None:
    for text, word in [("on please", "please"), ("demo of", "of"), ("enable", "enable"),
                       ("<!channel>", "&lt;!channel&gt;")]:
        reply = bot.command(text)
        assert reply.response.status_code == 200
        problem, _, usage = reply.ack_text.partition("\n\n")
        assert f"“{word}”" in problem  # named, escaped (the wording is the parser's)
        assert usage.startswith("*/autorepay* switches") and "Accounts: live, demo (DEMO)." in usage
    assert bot.okx.requests == [] and bot.slack.posted(APPROVALS) == []
    assert bot.slack.responses == []


def test_healthz(bot: Harness) -> None:
    assert bot.server is not None
    response = bot.http.get(bot.server.url + "/healthz")
    assert response.status_code == 200 and json.loads(response.text) == {"ready": True}
