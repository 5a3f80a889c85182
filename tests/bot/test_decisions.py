"""SPEC §3: at most once under concurrent clicks, deny, expiry, restart, no-op requests."""

from __future__ import annotations

from bot.approvals import Status
from handlers.blocks import APPROVE, DENY
from tests.bot.conftest import ALICE, APPROVALS, BOB, CAROL, Harness, live
from tests.conftest import ON_BOTH_BACKENDS

pytestmark = ON_BOTH_BACKENDS


def test_twelve_simultaneous_approve_clicks_write_once(bot: Harness) -> None:
    bot.command("on").followup()
    replies = bot.clicks([BOB, CAROL] * 6, APPROVE)
    assert all(r.response.status_code == 200 for r in replies)
    bot.thread_replies()
    for reply in replies:  # every click was answered (the one that won gets no note)
        if reply.response.status_code == 200 and bot.slack.responses_to(reply.name):
            assert "already" in reply.followup()
    assert bot.okx.codes() == ["0"]
    assert len(bot.slack.thread(bot.approval_message()[0])) == 1
    approved = [e for e in bot.store.audit_events() if e.event == "approved"]
    assert len(approved) == 1


def test_slack_retry_of_the_same_click_does_not_write_twice(bot: Harness) -> None:
    bot.command("on").followup()
    bot.click(BOB, APPROVE)
    bot.thread_replies()
    assert "already done" in bot.click(BOB, APPROVE).followup()
    assert bot.okx.codes() == ["0"]


def test_deny_replies_in_thread_and_changes_nothing(bot: Harness) -> None:
    bot.command("on").followup()
    bot.click(BOB, DENY)
    text = bot.thread_replies()[0]["text"]
    assert f"<@{BOB}> denied" in text and "Nothing was changed" in text
    assert bot.okx.codes() == []
    assert "already denied" in bot.click(CAROL, APPROVE).followup()
    assert bot.okx.codes() == []


def test_request_expires_and_can_no_longer_be_approved(bot: Harness) -> None:
    bot.command("on").followup()
    bot.expire(901)
    assert "expired without approval" in bot.thread_replies()[0]["text"]
    assert "already expired" in bot.click(BOB, APPROVE).followup()
    assert bot.okx.codes() == []


def test_click_after_ttl_before_the_sweep_expires_it(bot: Harness) -> None:
    bot.command("on").followup()
    bot.clock.now += 901
    assert "expired" in bot.click(BOB, APPROVE).followup()
    assert "expired without approval" in bot.thread_replies()[0]["text"]
    assert bot.okx.codes() == []


def test_already_in_requested_state_needs_no_approval(bot: Harness) -> None:
    live(bot.okx).auto_repay = True
    text = bot.command("on").followup()
    assert "Nothing to approve: auto repay is already *ON*" in text
    assert bot.slack.posted(APPROVALS) == []


def test_not_spot_mode_is_explained_and_not_posted(bot: Harness) -> None:
    live(bot.okx).acct_lv = "2"
    text = bot.command("on").followup()
    assert "only applies to Spot mode" in text and "Spot and futures mode" in text
    assert bot.slack.posted(APPROVALS) == []


def test_pending_request_survives_a_restart(bot: Harness) -> None:
    bot.command("on").followup()
    bot.approval_message()
    bot.restart()
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    assert live(bot.okx).auto_repay is True


def test_request_is_stored_before_the_approval_is_posted(bot: Harness) -> None:
    bot.slack.fail("chat.postMessage", "not_in_channel")
    text = bot.command("on").followup()
    assert "could not be put up for approval" in text and "not_in_channel" in text
    [request] = bot.store.with_status(Status.FAILED)
    assert request.requester == ALICE and request.error_code == "slack:not_in_channel"
