"""SPEC §3.3: one open request per account. The same change again points to the open
one; the opposite supersedes it; while a change is being applied, nothing new."""

from __future__ import annotations

from bot.approvals import Status
from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, DAVE, Harness, live
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.okx_server import SET_AUTO_REPAY

pytestmark = ON_BOTH_BACKENDS


def test_the_same_change_again_points_to_the_open_request(bot: Harness) -> None:
    bot.command("on").followup()
    ts, _ = bot.approval_message()
    [request] = bot.store.with_status(Status.PENDING)
    text = bot.command("on", user=DAVE).followup()
    assert "already waiting for approval" in text and f"`{request.id}`" in text
    assert f"p{ts.replace('.', '')}" in text  # a link to the approval message
    assert "No second request" in text
    assert len(bot.slack.posted(APPROVALS)) == 1
    assert len(bot.store.with_status(Status.PENDING)) == 1


def test_the_opposite_change_supersedes_the_open_request(bot: Harness) -> None:
    bot.command("on").followup()
    old_ts, _ = bot.approval_message()
    [old] = bot.store.with_status(Status.PENDING)
    live(bot.okx).auto_repay = True  # switched on meanwhile (say, in OKX's web UI)
    assert "waiting for approval" in bot.command("off", user=DAVE).followup()
    [new] = bot.store.with_status(Status.PENDING)
    superseded = bot.store.get(old.id)
    assert superseded.status is Status.SUPERSEDED and superseded.superseded_by == new.id
    update = bot.slack.wait_for(lambda: [c for c in bot.slack.called("chat.update")
                                         if c.args["ts"] == old_ts])
    assert f"Superseded by `{new.id}`" in str(update[-1].args["blocks"])
    assert "autorepay_approve" not in str(update[-1].args["blocks"])  # no buttons
    told = bot.slack.wait_for(lambda: bot.slack.dms(ALICE))
    assert f"was superseded by `{new.id}`" in told[0]["text"]
    # The old message's button, clicked anyway, writes nothing.
    assert "already superseded" in bot.click(BOB, APPROVE, index=0).followup()
    assert bot.okx.codes() == []
    bot.click(BOB, APPROVE)  # the new one
    assert "now *OFF*" in bot.thread_replies()[0]["text"]
    assert bot.okx.codes() == ["0"]
    events = [e.event for e in bot.store.audit_events(old.id)]
    assert "superseded" in events


def test_while_a_change_is_being_applied_new_requests_wait(bot: Harness) -> None:
    bot.command("on").followup()
    bot.okx.fail_next("slow", seconds=3, path=SET_AUTO_REPAY)
    bot.click(BOB, APPROVE)
    bot.until(lambda: bot.store.with_status(Status.APPROVED))
    text = bot.command("on", user=DAVE).followup()
    assert "a change is being applied" in text and "try again in a moment" in text
    assert len(bot.slack.posted(APPROVALS)) == 1
    assert "now *ON*" in bot.thread_replies()[0]["text"]


def test_other_accounts_are_not_affected(bot: Harness) -> None:
    bot.command("on").followup()
    assert "waiting for approval" in bot.command("demo on").followup()
    assert len(bot.store.with_status(Status.PENDING)) == 2


def test_an_open_request_past_its_time_does_not_block_a_new_one(bot: Harness) -> None:
    bot.command("on").followup()
    [old] = bot.store.with_status(Status.PENDING)
    bot.clock.now += 901  # not swept yet
    assert "waiting for approval" in bot.command("on").followup()
    assert bot.store.get(old.id).status is Status.EXPIRED
    assert "expired without approval" in bot.slack.wait_for(
        lambda: bot.slack.thread(bot.approval_message(0)[0]))[0]["text"]
