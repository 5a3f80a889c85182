"""The state machine on its own: plain data in, plain data out."""

from __future__ import annotations

import pytest

from bot.accounts import Account
from bot.approvals import (
    ChangeRequest,
    InvalidTransition,
    Rules,
    Status,
    Verdict,
    decide,
    expire,
)

REQUEST = ChangeRequest(id="ar-1", requester="UALICE", account=Account.LIVE, desired=True,
                        status=Status.PENDING, created_at=0.0, expires_at=900.0,
                        origin_channel="COPS")


def test_one_approval_approves_by_default() -> None:
    outcome = decide(REQUEST, "UBOB", True, 10.0, Rules())
    assert outcome.verdict is Verdict.APPROVED
    assert outcome.request.status is Status.APPROVED
    assert outcome.request.approvers == ("UBOB",)


def test_self_approval_is_refused_unless_allowed() -> None:
    assert decide(REQUEST, "UALICE", True, 10.0, Rules()).verdict is Verdict.SELF_APPROVAL
    allowed = Rules(allow_self_approval=True)
    assert decide(REQUEST, "UALICE", True, 10.0, allowed).verdict is Verdict.APPROVED


def test_quorum_needs_distinct_approvers() -> None:
    rules = Rules(approvals_required=2)
    first = decide(REQUEST, "UBOB", True, 10.0, rules)
    assert first.verdict is Verdict.RECORDED and first.request.status is Status.PENDING
    again = decide(first.request, "UBOB", True, 11.0, rules)
    assert again.verdict is Verdict.ALREADY_VOTED
    second = decide(first.request, "UCAROL", True, 12.0, rules)
    assert second.verdict is Verdict.APPROVED
    assert second.request.approvers == ("UBOB", "UCAROL")


def test_deny_and_expiry() -> None:
    denied = decide(REQUEST, "UBOB", False, 10.0, Rules())
    assert denied.request.status is Status.DENIED and denied.request.decided_by == "UBOB"
    late = decide(REQUEST, "UBOB", True, 900.0, Rules())
    assert late.verdict is Verdict.EXPIRED and late.request.status is Status.EXPIRED
    assert expire(REQUEST, 899.9) is None
    assert expire(REQUEST, 900.0) is not None


@pytest.mark.parametrize("status", [Status.APPROVED, Status.DONE, Status.DENIED,
                                    Status.EXPIRED, Status.FAILED])
def test_decided_requests_cannot_be_decided_again(status: Status) -> None:
    from dataclasses import replace
    decided = replace(REQUEST, status=status)
    for approve in (True, False):
        assert decide(decided, "UCAROL", approve, 10.0, Rules()).verdict is Verdict.NOT_PENDING


def test_illegal_transitions_raise() -> None:
    with pytest.raises(InvalidTransition):
        REQUEST.moved_to(Status.DONE)
    done = REQUEST.moved_to(Status.APPROVED).moved_to(Status.DONE)
    with pytest.raises(InvalidTransition):
        done.moved_to(Status.FAILED)
