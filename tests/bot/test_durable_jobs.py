"""SPEC §7: every side effect of a decision is a job. Slack failing at any moment delays
messages, never the OKX write, and never loses them; a lost answer never posts twice."""

from __future__ import annotations

import time
from typing import Any

from bot.approvals import Status
from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, Harness, live
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.okx_server import SET_AUTO_REPAY

pytestmark = ON_BOTH_BACKENDS

# The message update, the thread reply and the note to the requester (a DM).
AFTER_THE_CLICK = ("chat.update", "chat.postMessage")


def is_thread_reply(args: dict[str, Any]) -> bool:
    return "thread_ts" in args


def click_and_time_the_write(bot: Harness) -> float:
    """Seconds from sending the Approve click to OKX receiving the write."""
    clicked = time.time()
    assert bot.click(BOB, APPROVE).response.status_code == 200
    [write] = bot.okx.wait_for(lambda: [r for r in bot.okx.requests
                                        if r.path == SET_AUTO_REPAY])
    return float(write.arrived - clicked)


def test_slack_dropping_every_call_at_the_click_delays_only_the_messages(
        bot: Harness) -> None:
    bot.command("on").followup()
    for method in AFTER_THE_CLICK:
        bot.slack.drop(method, times=3)
    assert click_and_time_the_write(bot) < 1.0
    reply = bot.thread_replies()[0]["text"]  # once Slack answers again
    assert "now *ON*" in reply
    assert bot.okx.codes() == ["0"]
    bot.until(lambda: bot.store.unannounced() == [])


def test_slack_hanging_at_the_click_delays_only_the_messages(
        harness: Harness) -> None:
    bot = harness.start(server={"slack_timeout": 1})
    bot.command("on").followup()
    bot.slack.stall("chat.update")
    bot.slack.stall("chat.postMessage", is_thread_reply)
    assert click_and_time_the_write(bot) < 1.0
    bot.until(lambda: bot.store.with_status(Status.DONE))
    bot.slack.wait_for(lambda: bot.slack.stalled("chat.postMessage"))
    bot.slack.unstall()  # Slack is back: the retries go through
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    final = bot.slack.wait_for(lambda: [c for c in bot.slack.called("chat.update")
                                        if "Done" in str(c.args.get("blocks"))])
    assert final
    assert bot.okx.codes() == ["0"]


def test_the_sweeper_survives_a_dropped_update_and_keeps_expiring(
        harness: Harness) -> None:
    bot = harness.start(server={"sweep_every": 0.05})
    bot.command("on").followup()
    bot.slack.drop("chat.update", times=4)
    bot.clock.now += 901
    assert "expired without approval" in bot.thread_replies()[0]["text"]
    bot.command("demo on").followup()  # another request, later: still swept
    bot.clock.now += 901
    ts, _ = bot.approval_message()
    replies = bot.slack.wait_for(lambda: bot.slack.thread(ts))
    assert "expired without approval" in replies[0]["text"]
    bot.slack.wait_for(lambda: len([c for c in bot.slack.called("chat.update")
                                    if "Expired" in str(c.args.get("blocks"))]) == 2)


def test_a_restart_while_slack_fails_loses_nothing_and_writes_once(bot: Harness) -> None:
    bot.command("on").followup()
    for method in AFTER_THE_CLICK:
        bot.slack.fail(method, "fatal_error", times=1000)
    bot.click(BOB, APPROVE)
    bot.until(lambda: bot.store.with_status(Status.DONE))
    bot.stop()
    bot.slack.heal()
    bot.start()
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    assert bot.okx.codes() == ["0"]
    told = bot.slack.wait_for(lambda: [dm for dm in bot.slack.dms(ALICE)
                                       if "Done" in dm["text"]])
    bot.until(lambda: bot.store.unannounced() == [])
    assert len(told) == 1 and len(bot.slack.dms()) == 1
    bot.until(lambda: bot.store.unannounced() == [])


def test_a_lost_answer_to_the_approval_post_does_not_post_it_twice(bot: Harness) -> None:
    bot.slack.lose_answer("chat.postMessage")
    assert "waiting for approval" in bot.command("on").followup()  # found on the retry
    assert len(bot.slack.history[APPROVALS]) == 1  # not posted again
    assert bot.slack.called("conversations.history")
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    assert live(bot.okx).auto_repay is True


def test_slack_slower_than_the_reply_can_wait_tells_the_requester_later(
        bot: Harness) -> None:
    bot.slack.fail("chat.postMessage", "fatal_error", times=4)  # posted after 7.5 s
    assert "hasn't taken its approval message yet" in bot.command("on").followup()
    note = bot.slack.wait_for(lambda: [dm for dm in bot.slack.dms(ALICE)
                                       if "waiting for approval" in dm["text"]])
    assert "after all" in note[0]["text"]
    assert len(bot.slack.posted(APPROVALS)) == 1


def test_without_the_history_scope_the_post_is_made_again_and_both_buttons_are_safe(
        bot: Harness) -> None:
    bot.slack.lose_answer("chat.postMessage")
    bot.slack.fail("conversations.history", "missing_scope")
    bot.command("on").followup()
    bot.slack.wait_for(lambda: len(bot.slack.history[APPROVALS]) == 2)
    bot.click(BOB, APPROVE, index=0)  # the stray first message: same request, one write
    bot.click(BOB, APPROVE, index=-1)
    bot.thread_replies()
    assert bot.okx.codes() == ["0"]


def test_approval_channel_refusing_on_a_retry_ends_the_request(bot: Harness) -> None:
    bot.slack.fail("chat.postMessage", "fatal_error", times=1)
    bot.slack.fail("chat.postMessage", "not_in_channel", times=1)
    text = bot.command("on").followup()
    assert "could not be put up" in text and "not_in_channel" in text
    assert bot.store.with_status(Status.PENDING) == []
    bot.until(lambda: bot.store.unannounced() == [])


def test_a_request_that_could_not_be_posted_is_not_announced_again_at_restart(
        bot: Harness) -> None:
    bot.slack.fail("chat.postMessage", "not_in_channel")
    assert "could not be put up" in bot.command("on").followup()
    bot.until(lambda: bot.store.unannounced() == [])
    said = len(bot.slack.calls)
    bot.restart()
    bot.command("status").followup()  # the restarted bot is up and has found its jobs
    assert all(c.method not in ("chat.postEphemeral", "chat.postMessage")
               for c in bot.slack.calls[said:])


def test_a_message_posted_by_a_lost_try_is_closed_when_the_request_ended_meanwhile(
        bot: Harness) -> None:
    """Seen: the request expired before the retry; the retry then looked for nothing,
    and the message it had posted kept live buttons."""
    bot.slack.lose_answer("chat.postMessage")
    bot.slack.fail("conversations.history", "fatal_error", times=3)  # found after 7.5 s
    assert "hasn't taken its approval message yet" in bot.command("on").followup()
    bot.expire(901)
    [message] = bot.slack.history[APPROVALS]
    closed = bot.slack.wait_for(lambda: [c for c in bot.slack.called("chat.update")
                                         if c.args["ts"] == message["ts"]])
    assert "Expired" in str(closed[-1].args["blocks"])
    assert "autorepay_approve" not in str(closed[-1].args["blocks"])
    assert "expired without approval" in bot.slack.wait_for(
        lambda: bot.slack.thread(message["ts"]))[0]["text"]
    bot.until(lambda: bot.store.unannounced() == [])
    assert not [dm for dm in bot.slack.dms() if "after all" in dm["text"]]
    assert len(bot.slack.history[APPROVALS]) == 1


def test_a_click_is_recorded_before_slack_gets_its_ack(bot: Harness) -> None:
    """Seen: a SIGKILL within ~100 ms after the ack lost the click: the decision was
    made after the ack."""
    bot.command("on").followup()
    assert bot.click(BOB, APPROVE).response.status_code == 200
    assert "approved" in [e.event for e in bot.store.audit_events()]  # no waiting
