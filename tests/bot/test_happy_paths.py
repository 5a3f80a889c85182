"""The flows a team uses every day, through the real HTTP endpoint."""

from __future__ import annotations

import re

from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, DAVE, Harness, demo, live
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.slack_requests import find_action

pytestmark = ON_BOTH_BACKENDS


def test_live_on_is_approved_applied_and_reported_in_the_thread(bot: Harness) -> None:
    reply = bot.command("on")
    assert reply.response.status_code == 200
    assert "Checking *live* (LIVE)" in reply.ack_text
    assert "waiting for approval" in reply.followup()
    _, message = bot.approval_message()
    assert f"<@{ALICE}> asks to switch auto repay *ON* on *live* (LIVE)." in message["text"]
    assert "currently *OFF*" in str(message["blocks"])
    assert "No reason given." in str(message["blocks"])
    assert live(bot.okx).auto_repay is False  # nothing happens before approval

    bot.click(BOB, APPROVE)
    [thread] = bot.thread_replies()
    assert "Auto repay is now *ON* on *live* (LIVE)" in thread["text"]
    assert f"Requested by <@{ALICE}>, approved by <@{BOB}>" in thread["text"]
    assert "448812345678" in thread["text"]
    assert live(bot.okx).auto_repay is True
    final = bot.slack.wait_for(lambda: [c for c in bot.slack.called("chat.update")
                                        if "Done" in str(c.args)])
    assert "actions" not in str(final[-1].args["blocks"])  # buttons gone
    request_id = find_action(message["blocks"], APPROVE)["value"]
    assert "No reason given." in str(thread["blocks"]) and request_id in str(thread["blocks"])
    told = bot.slack.wait_for(lambda: bot.slack.dms(ALICE))
    assert len(told) == 1 and "Done" in told[0]["text"] and "*live* (LIVE)" in told[0]["text"]
    assert bot.slack.called("chat.postEphemeral") == []  # the note is a DM now
    events = [e.event for e in bot.store.audit_events()]
    assert events[:3] == ["started", "requested", "approval_posted"] and "okx_done" in events


def test_live_off(bot: Harness) -> None:
    live(bot.okx).auto_repay = True
    bot.command("OFF ").followup()
    bot.click(BOB, APPROVE)
    assert "now *OFF*" in bot.thread_replies()[0]["text"]
    assert live(bot.okx).auto_repay is False


def test_demo_on_is_marked_demo_everywhere_and_leaves_live_alone(bot: Harness) -> None:
    reply = bot.command("  Demo   ON")
    assert "DEMO" in reply.ack_text and "DEMO" in reply.followup()
    _, message = bot.approval_message()
    assert "[DEMO]" in message["text"]
    bot.click(BOB, APPROVE)
    assert "[DEMO]" in bot.thread_replies()[0]["text"]
    assert demo(bot.okx).auto_repay is True
    assert live(bot.okx).auto_repay is False


def test_status_needs_no_approval_and_writes_nothing(bot: Harness) -> None:
    live(bot.okx).auto_repay = True
    text = bot.command("status live", user=BOB).followup()
    assert re.search(r"Auto repay is \*ON\* on (the )?\*live\* \(LIVE\)", text), text
    every = bot.command("status", user=BOB).followup()  # every account, one line each
    assert "*live* (LIVE): auto repay *ON*" in every
    assert "*demo* (DEMO): auto repay *OFF*" in every
    assert bot.slack.posted(APPROVALS) == []
    assert bot.okx.codes() == []  # no set-auto-repay call at all


def test_demo_alone_means_demo_status(bot: Harness) -> None:
    text = bot.command("demo").followup()
    assert text.startswith("[DEMO] ") and "*demo* (DEMO)" in text
    assert re.search(r"Auto repay is \*OFF\* on (the )?\*demo\* \(DEMO\)", text), text


def test_help_and_empty_answer_with_usage_at_once(bot: Harness) -> None:
    for text in ("help", "", "   "):
        reply = bot.command(text)
        for command in ("`/autorepay on ACCOUNT`", "`/autorepay status`",
                        "`/autorepay pending`", "`/autorepay history", "`/autorepay cancel ID`"):
            assert command in reply.ack_text
        assert "Accounts: live, demo (DEMO)." in reply.ack_text
        assert reply.response.json()["response_type"] == "ephemeral"
    assert bot.okx.requests == []


def test_user_group_member_may_request(bot: Harness) -> None:
    assert "waiting for approval" in bot.command("on", user=DAVE).followup()
