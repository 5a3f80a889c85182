"""Slack Web API trouble: rate limits, 5xx, the approvals channel unusable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.approvals import ChangeRequest, Status
from bot.store import Store
from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, Harness
from tests.conftest import ON_BOTH_BACKENDS

pytestmark = ON_BOTH_BACKENDS


def test_rate_limited_post_is_retried_after_retry_after(bot: Harness) -> None:
    bot.slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=1)
    assert "waiting for approval" in bot.command("on").followup()
    assert len(bot.slack.posted(APPROVALS)) == 1


def test_server_error_is_retried(bot: Harness) -> None:
    bot.slack.fail("chat.postMessage", "internal_error", status=503)
    assert "waiting for approval" in bot.command("on").followup()


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found", "is_archived"])
def test_unusable_approvals_channel_is_explained_and_nothing_stays_pending(
        bot: Harness, error: str) -> None:
    bot.slack.fail("chat.postMessage", error)
    text = bot.command("on").followup()
    assert "could not be put up for approval" in text and error in text
    store = bot.store
    assert store.with_status(Status.PENDING) == []
    [failed] = store.with_status(Status.FAILED)
    assert failed.requester == ALICE and failed.error_code == f"slack:{error}"


def is_thread_reply(args: dict[str, Any]) -> bool:
    return "thread_ts" in args


def is_dm(args: dict[str, Any]) -> bool:
    return args.get("channel") == ALICE


def test_thread_reply_failure_is_retried_until_slack_takes_it(bot: Harness) -> None:
    bot.command("on").followup()
    bot.slack.fail("chat.postMessage", "fatal_error", times=3, when=is_thread_reply)
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]  # tries after 0.5, 1 and 2 s
    assert bot.okx.codes() == ["0"]  # announcing again is not executing again
    bot.until(lambda: bot.store.unannounced() == [])


def test_thread_reply_refused_for_good_ends_its_job_and_the_rest_still_say_it(
        bot: Harness) -> None:
    bot.command("on").followup()
    bot.slack.fail("chat.postMessage", "channel_not_found", when=is_thread_reply)
    bot.click(BOB, APPROVE)
    told = bot.slack.wait_for(lambda: bot.slack.dms(ALICE))
    assert "Done" in told[-1]["text"]
    bot.until(lambda: bot.store.unannounced() == [])  # every job has ended
    updates = [c.args for c in bot.slack.called("chat.update")]
    assert "Done" in str(updates[-1]["blocks"])
    assert bot.slack.thread(bot.approval_message()[0]) == []
    assert len([c for c in bot.slack.calls if "thread_ts" in c.args]) == 1  # no retry


def test_a_failing_dm_to_the_requester_is_retried_and_arrives_once(bot: Harness) -> None:
    bot.command("on").followup()
    bot.slack.fail("chat.postMessage", "fatal_error", times=2, when=is_dm)
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    dm = bot.slack.wait_for(lambda: bot.slack.dms(ALICE))  # tries after 0.5 and 1 s
    assert "Done" in dm[0]["text"]
    bot.until(lambda: bot.store.unannounced() == [])
    tries = [c for c in bot.slack.called("chat.postMessage") if is_dm(c.args)]
    assert [c.answer.get("ok") for c in tries] == [False, False, True]
    assert len(bot.slack.dms(ALICE)) == 1
    assert bot.slack.called("chat.postEphemeral") == []  # no ephemeral, no fallback
    assert bot.okx.codes() == ["0"]


def test_a_dm_refused_for_good_ends_its_job_and_the_rest_still_say_it(
        bot: Harness) -> None:
    bot.command("on").followup()
    bot.slack.fail("chat.postMessage", "user_not_found", when=is_dm)
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    bot.until(lambda: bot.store.unannounced() == [])  # every job has ended
    updates = [c.args for c in bot.slack.called("chat.update")]
    assert "Done" in str(updates[-1]["blocks"])
    assert bot.slack.dms(ALICE) == []
    tries = [c for c in bot.slack.called("chat.postMessage") if is_dm(c.args)]
    assert len(tries) == 1  # no retry
    assert bot.slack.called("chat.postEphemeral") == []


async def unannounced_in(database: Path) -> list[ChangeRequest]:
    store = await Store.open(database)
    try:
        return await store.unannounced()
    finally:
        await store.aclose()
