"""The approval state machine: plain Python, no Slack, no HTTP, no database.

    pending ──approve x N──▶ approved ──OKX ok──▶ done
       │                        └─────OKX refused/failed──▶ failed
       ├──deny──▶ denied
       ├──TTL passes──▶ expired
       ├──a request for the opposite value is made──▶ superseded
       ├──the requester or an approver withdraws it──▶ cancelled
       └──approval message could not be posted──▶ failed

`decide()` is pure: given a request as stored and a click, it says what happens. The
store runs it inside one transaction, so the outcome is applied atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from bot.accounts import Account


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    FAILED = "failed"
    DONE = "done"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


OPEN = frozenset({Status.PENDING, Status.APPROVED})  # at most one per account


NEXT: dict[Status, frozenset[Status]] = {
    # pending → failed: the approval message could not be posted
    Status.PENDING: frozenset({Status.APPROVED, Status.DENIED, Status.EXPIRED, Status.FAILED,
                               Status.SUPERSEDED, Status.CANCELLED}),
    Status.APPROVED: frozenset({Status.DONE, Status.FAILED}),
}


class InvalidTransition(Exception):
    pass


@dataclass(frozen=True)
class ChangeRequest:
    id: str
    requester: str
    account: Account
    desired: bool
    status: Status
    created_at: float
    expires_at: float
    origin_channel: str
    approval_channel: str = ""
    approval_ts: str = ""
    approvers: tuple[str, ...] = ()  # who approved, in order
    decided_by: str = ""  # who denied, or whose approval completed the quorum
    result: bool | None = None  # the state OKX reported afterwards
    error_code: str = ""
    error_text: str = ""
    okx_uid: str = ""
    okx_label: str = ""
    superseded_by: str = ""
    reason: str = ""  # why the requester asks (may be empty)

    def moved_to(self, status: Status, **changes: object) -> ChangeRequest:
        if status not in NEXT.get(self.status, frozenset()):
            raise InvalidTransition(f"request {self.id}: {self.status} → {status} is not allowed")
        return replace(self, status=status, **changes)  # type: ignore[arg-type]

    def is_expired(self, now: float) -> bool:
        return self.status is Status.PENDING and now >= self.expires_at


@dataclass(frozen=True)
class Rules:
    approvals_required: int = 1
    allow_self_approval: bool = False


class Verdict(StrEnum):
    APPROVED = "approved"  # quorum reached: execute now (exactly one click gets this)
    RECORDED = "recorded"  # counted; more approvals needed
    DENIED = "denied"
    SELF_APPROVAL = "self_approval"
    ALREADY_VOTED = "already_voted"
    NOT_PENDING = "not_pending"
    EXPIRED = "expired"


REFUSALS = frozenset({Verdict.SELF_APPROVAL, Verdict.ALREADY_VOTED, Verdict.NOT_PENDING,
                      Verdict.EXPIRED})


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    request: ChangeRequest  # as it is after the click

    @property
    def changed(self) -> bool:
        return self.verdict not in (Verdict.SELF_APPROVAL, Verdict.ALREADY_VOTED,
                                    Verdict.NOT_PENDING)


def decide(request: ChangeRequest, user: str, approve: bool, now: float,
           rules: Rules) -> Outcome:
    """What one Approve/Deny click by `user` (already known to be an approver) does."""
    if request.status is not Status.PENDING:
        return Outcome(Verdict.NOT_PENDING, request)
    if request.is_expired(now):
        return Outcome(Verdict.EXPIRED, request.moved_to(Status.EXPIRED))
    if not approve:
        return Outcome(Verdict.DENIED, request.moved_to(Status.DENIED, decided_by=user))
    if user == request.requester and not rules.allow_self_approval:
        return Outcome(Verdict.SELF_APPROVAL, request)
    if user in request.approvers:
        return Outcome(Verdict.ALREADY_VOTED, request)
    approvers = (*request.approvers, user)
    if len(approvers) < rules.approvals_required:
        return Outcome(Verdict.RECORDED, replace(request, approvers=approvers))
    return Outcome(Verdict.APPROVED,
                   request.moved_to(Status.APPROVED, approvers=approvers, decided_by=user))


class Admission(StrEnum):
    """What a new request meets in the account's open request, if any (SPEC §3.3)."""

    FRESH = "fresh"  # nothing open: it goes up for approval
    DUPLICATE = "duplicate"  # the same change is pending: point to it, store nothing
    SUPERSEDES = "supersedes"  # the opposite is pending: it is superseded, this goes up
    BUSY = "busy"  # a change is being applied: try again in a moment


def admit(open_request: ChangeRequest | None, desired: bool) -> Admission:
    if open_request is None:
        return Admission.FRESH
    if open_request.status is Status.APPROVED:
        return Admission.BUSY
    if open_request.desired == desired:
        return Admission.DUPLICATE
    return Admission.SUPERSEDES


def cancel(request: ChangeRequest, user: str, now: float) -> ChangeRequest | None:
    """The request withdrawn by `user` (already known to be its requester or an
    approver); None when it is no longer pending (decided, or past its TTL)."""
    if request.status is not Status.PENDING or request.is_expired(now):
        return None
    return request.moved_to(Status.CANCELLED, decided_by=user)


def expire(request: ChangeRequest, now: float) -> ChangeRequest | None:
    """The expired request, if its time has come; None otherwise."""
    return request.moved_to(Status.EXPIRED) if request.is_expired(now) else None
