"""SPEC §2: who may ask, see and approve; refusals are clear and audited."""

from __future__ import annotations

from bot.approvals import Status
from bot.config import Access
from handlers.blocks import APPROVE, DENY
from tests.bot.conftest import ALICE, APPROVALS, BOB, CAROL, MALLORY, OPS, Harness, demo, live


def audit(bot: Harness) -> list[str]:
    return [e.event for e in bot.store.audit_events()]


def test_non_requester_cannot_ask(bot: Harness) -> None:
    text = bot.command("on", user=MALLORY).followup()
    assert "not on the list of people who may request" in text
    assert bot.slack.posted(APPROVALS) == []
    assert "refused:request" in audit(bot)


def test_approver_who_is_not_a_requester_cannot_ask(bot: Harness) -> None:
    assert "may request" in bot.command("on", user=BOB).followup()


def test_only_requesters_and_approvers_see_status(bot: Harness) -> None:
    assert "Auto repay is *OFF*" in bot.command("status live", user=CAROL).followup()
    assert "*live* (LIVE): auto repay *OFF*" in bot.command("status", user=CAROL).followup()
    for command in ("status live", "status"):
        refused = bot.command(command, user=MALLORY).followup()
        assert "Only requesters and approvers" in refused and "auto repay *" not in refused
    assert "refused:status" in audit(bot)


def test_requester_cannot_approve_own_request(bot: Harness) -> None:
    bot.command("on", user=ALICE).followup()
    reply = bot.click(ALICE, APPROVE)  # Alice is an approver too
    assert "can't approve your own request" in reply.followup()
    assert live(bot.okx).auto_repay is False
    assert bot.okx.codes() == []
    assert "click_refused:self_approval" in audit(bot)


def test_self_approval_when_allowed(harness: Harness) -> None:
    bot = harness.start(allow_self_approval=True)
    bot.command("on", user=ALICE).followup()
    bot.click(ALICE, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]


def test_non_approver_click_is_refused(bot: Harness) -> None:
    bot.command("on").followup()
    for action in (APPROVE, DENY):
        assert "not an approver" in bot.click(MALLORY, action).followup()
    assert bot.okx.codes() == []
    assert audit(bot).count("refused:approve") == 1
    assert audit(bot).count("refused:deny") == 1


def test_the_approve_button_checks_the_approvers_of_the_requests_account(
        harness: Harness) -> None:
    """Carol approves demo only (AUTOREPAY_DEMO_APPROVERS); Bob, a global approver, is
    not one of demo's: the click is checked against the request's account."""
    bot = harness.start(approvers=(BOB,), per_account={"demo": Access((ALICE,), (CAROL,))})
    bot.command("demo on").followup()
    assert "not an approver" in bot.click(BOB, APPROVE).followup()
    assert bot.okx.codes() == []
    assert audit(bot).count("refused:approve") == 1
    bot.click(CAROL, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    assert demo(bot.okx).auto_repay is True
    bot.command("on").followup()  # live keeps the global approvers: Carol is not one
    assert "not an approver" in bot.click(CAROL, APPROVE).followup()
    bot.click(BOB, APPROVE)
    bot.until(lambda: live(bot.okx).auto_repay is True)
    assert bot.okx.codes() == ["0", "0"]


def test_quorum_of_two_distinct_approvers(harness: Harness) -> None:
    bot = harness.start(approvals_required=2)
    bot.command("on").followup()
    assert "1 more needed" in bot.click(BOB, APPROVE).followup()
    assert "already approved" in bot.click(BOB, APPROVE).followup()
    assert bot.okx.codes() == []
    progress = bot.slack.wait_for(lambda: bot.slack.called("chat.update"))
    assert f"Approved so far by <@{BOB}>" in str(progress[0].args["blocks"])
    bot.click(CAROL, APPROVE)
    thread = bot.thread_replies()[0]["text"]
    assert f"approved by <@{BOB}>, <@{CAROL}>" in thread
    assert bot.okx.codes() == ["0"]


def test_channel_restriction(harness: Harness) -> None:
    bot = harness.start(allowed_channels=("C0TRADING",))
    text = bot.command("on", channel=OPS).followup()
    assert "can't be used in this channel" in text and "<#C0TRADING>" in text
    assert "waiting for approval" in bot.command("on", channel="C0TRADING").followup()


def test_identity_comes_from_the_signed_payload_not_the_text(bot: Harness) -> None:
    reply = bot.command(f"on <@{ALICE}>", user=MALLORY)
    assert "*/autorepay* switches" in reply.ack_text  # a usage error, nothing else
    assert f"<@{ALICE}>" not in reply.ack_text  # not echoed as a mention either
    assert bot.store.with_status(Status.PENDING) == []
    assert bot.slack.posted(APPROVALS) == []


def test_user_group_lookup_is_cached(bot: Harness) -> None:
    from tests.bot.conftest import DAVE
    bot.command("status", user=DAVE).followup()
    bot.command("status", user=DAVE).followup()
    assert len(bot.slack.called("usergroups.users.list")) == 1
