"""SPEC §3.7: OKX refusals and outages are explained in the thread, with OKX's code."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from bot.approvals import Status
from bot.jobs import Job, Kind, Lost
from handlers.blocks import APPROVE
from tests.bot.conftest import BOB, Harness, live
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.okx_server import SET_AUTO_REPAY

pytestmark = ON_BOTH_BACKENDS


@pytest.mark.parametrize(("arrange", "words", "code"), [
    (lambda a: setattr(a, "perm", "read_only"), "lacks the Trade permission", "50120"),
    (lambda a: setattr(a, "acct_lv", "3"), "not in Spot mode", "51010"),
])
def test_refusal_after_approval_is_explained(bot: Harness, arrange: object, words: str,
                                             code: str) -> None:
    bot.command("on").followup()
    arrange(live(bot.okx))  # type: ignore[operator]  # changed between request and click
    bot.click(BOB, APPROVE)
    text = bot.thread_replies()[0]["text"]
    assert words in text and f"OKX code {code}" in text and "Nothing was changed" in text
    assert bot.okx.codes() == [code]  # asked once, not retried
    assert live(bot.okx).auto_repay is False


def test_wrong_environment_key_is_explained(harness: Harness) -> None:
    harness.environ["OKX_API_KEY"] = "demo-key-2222"  # a demo key configured as live
    harness.environ["OKX_API_SECRET"] = harness.environ["OKX_DEMO_API_SECRET"]
    harness.environ["OKX_API_PASSPHRASE"] = harness.environ["OKX_DEMO_API_PASSPHRASE"]
    bot = harness.start()
    text = bot.command("status").followup()
    assert "does not match the demo/live environment" in text and "50101" in text


def test_outage_during_execution_is_reported_honestly(bot: Harness) -> None:
    bot.command("on").followup()
    bot.okx.fail_next("50001", times=50, path="/api/v5/account/set-auto-repay")
    bot.click(BOB, APPROVE)
    text = bot.thread_replies()[0]["text"]
    assert "outcome is unknown" in text and "50001" in text  # not "could not be switched"
    assert "could not be switched" not in text
    assert "check it with `/autorepay status live`" in text


def test_okx_down_at_request_time(bot: Harness) -> None:
    bot.okx.fail_next("http500", times=50)
    text = bot.command("on").followup()
    assert "can't be used right now" in text
    assert bot.slack.posted() == []


def test_slow_okx_does_not_delay_the_ack(bot: Harness) -> None:
    bot.okx.fail_next("slow", seconds=2.0)
    reply = bot.command("status live")
    assert reply.response.elapsed.total_seconds() < 1.0
    assert "Auto repay is *OFF*" in reply.followup()


def test_missing_demo_credentials_keep_live_working(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("OKX_DEMO_API_KEY", "OKX_DEMO_API_SECRET", "OKX_DEMO_API_PASSPHRASE"):
        del harness.environ[name]
    bot = harness.start()
    text = bot.command("demo on").followup()
    assert "can't be used right now" in text and "isn't set up in the bot" in text
    # what to set is for whoever runs the bot: the log, not the trader (SPEC §3.9)
    assert "OKX_DEMO_API_KEY" in caplog.text and "OKX_DEMO_API_KEY" not in text
    assert "credentials set --account demo" in caplog.text and "credentials set" not in text
    assert "waiting for approval" in bot.command("on").followup()


def test_okx_slower_than_slacks_window_still_acks_at_once(bot: Harness) -> None:
    bot.command("on").followup()
    bot.okx.fail_next("slow", seconds=3.5, path="/api/v5/account/set-auto-repay")
    reply = bot.click(BOB, APPROVE)
    assert reply.response.status_code == 200
    assert reply.response.elapsed.total_seconds() < 1.0
    assert bot.slack.thread(bot.approval_message()[0]) == []  # not yet answered
    assert "now *ON*" in bot.thread_replies()[0]["text"]


@pytest.mark.parametrize(("code", "words"), [
    ("50101", "does not match the demo/live environment"),
    ("50110", "IP address is not on the API key's IP whitelist"),
    ("50120", "lacks the Trade permission"),
])
def test_key_problems_at_execution_are_explained_in_the_thread(bot: Harness, code: str,
                                                               words: str) -> None:
    bot.command("on").followup()
    bot.okx.fail_next(code, path="/api/v5/account/set-auto-repay")
    bot.click(BOB, APPROVE)
    text = bot.thread_replies()[0]["text"]
    assert words in text and f"OKX code {code}" in text and "Nothing was changed" in text


def test_a_write_whose_job_another_replica_took_over_is_never_sent(bot: Harness) -> None:
    """A replica that was paused past its lease finds the job gone and writes nothing
    (else its late write could undo a later approved change)."""
    bot.command("on").followup()
    bot.okx.fail_next("slow", seconds=1.5, path=SET_AUTO_REPAY)
    bot.click(BOB, APPROVE)
    bot.okx.wait_for(lambda: bot.okx.codes())  # the real job's write is at OKX
    [request] = bot.store.with_status(Status.APPROVED)
    ghost = Job(10**6, request.id, Kind.APPLY, "", 2, owner="paused-replica")
    assert bot.server is not None
    with pytest.raises(Lost):
        bot.server.call(bot.runtime.service.execute(request, ghost))
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    assert len(bot.okx.codes()) == 1  # the ghost's write was never sent


def test_a_go_ahead_that_cannot_be_checked_puts_the_write_back_for_a_retry(
        bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database blinks right before the write: nothing is sent unsure, and the job
    is tried again after the usual short pause (not after a whole lease)."""
    bot.command("on").followup()
    jobs = bot.runtime.service.store.jobs
    real, asked = jobs.confirm, []

    async def blinking(job: Job, until: float) -> bool:
        asked.append(job.id)
        if len(asked) == 1:
            raise OperationalError("UPDATE jobs", {}, ConnectionError("server closed"))
        return await real(job, until)

    monkeypatch.setattr(jobs, "confirm", blinking)
    bot.click(BOB, APPROVE)
    text = bot.thread_replies()[0]["text"]
    assert "now *ON*" in text and "Resumed" not in text
    assert len(asked) == 2 and bot.okx.codes() == ["0"]
