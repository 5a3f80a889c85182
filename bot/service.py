"""What the bot does, on plain data: status, requests, clicks, OKX execution, expiry.

Handlers call this and render what it returns; nothing here knows about Slack.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bot.accounts import Account
from bot.approvals import Admission, ChangeRequest, Outcome, Rules, Status
from bot.jobs import LEASE_SECONDS, Job, Lost, Unconfirmed
from bot.policy import NOT_A_CANCELLER, Policy, Refusal
from bot.readings import Drift, Reading, Source, happened, newest_first
from bot.store import Store
from okx import AccountConfig, OkxClient, OkxError, OkxWithdrawnError

log = logging.getLogger("bot.service")


@dataclass(frozen=True)
class AccountState:
    """The answer to `status`."""

    account: Account
    config: AccountConfig


@dataclass(frozen=True)
class NoChangeNeeded:
    """The account already is in the requested state."""

    account: Account
    config: AccountConfig


@dataclass(frozen=True)
class NotApplicable:
    """Auto repay does not apply: not Spot mode with borrowing."""

    account: Account
    config: AccountConfig


@dataclass(frozen=True)
class Unavailable:
    """The account cannot be used: credentials missing, or OKX said no / is down.

    `reason` is for the trader who asked; what an operator needs has gone to the log.
    """

    account: Account
    reason: str


# `status` of every account: how long one account may take before its line says so.
OVERVIEW_SECONDS = 5.0

# For traders: what to do about an account the bot has no usable key for. Which variable
# or command would fix it is the operator's business, and goes to the log.
NOT_SET_UP = "it isn't set up in the bot (no usable OKX API key); ask whoever runs it."
RECONFIGURED = ("the account was removed from the bot, or changed between LIVE and DEMO, "
                "after this request was made; nothing was sent to OKX. Ask again if it "
                "still applies.")


@dataclass(frozen=True)
class Requested:
    request: ChangeRequest
    config: AccountConfig
    post_job: int  # the job that posts its approval message
    superseded: ChangeRequest | None = None


@dataclass(frozen=True)
class AlreadyOpen:
    """The account has an open request: the same change pending (`busy` False), or one
    being applied (`busy` True). Nothing new was stored."""

    request: ChangeRequest
    busy: bool


@dataclass(frozen=True)
class Overview:
    """`status` without an account: every account the user may see, one line each."""

    states: list[AccountState | Unavailable]


@dataclass(frozen=True)
class Listing:
    """`pending` or `history`: requests of the accounts the user may see (and, in
    `history`, the changes made outside the bot that the drift watch found)."""

    requests: list[ChangeRequest]
    accounts: list[Account]  # the accounts looked at
    drifts: list[Drift] = field(default_factory=list)  # newest first
    alert_channel: str = ""  # where the drift alerts are posted


@dataclass(frozen=True)
class Cancelled:
    request: ChangeRequest  # as it is now
    done: bool  # this command cancelled it (False: it had ended before)


StatusResult = AccountState | Unavailable | Refusal
RequestResult = (Requested | AlreadyOpen | NoChangeNeeded | NotApplicable | Unavailable
                 | Refusal)


def new_request_id() -> str:
    return "ar-" + secrets.token_hex(4)


class AutoRepay:
    def __init__(
        self,
        *,
        store: Store,
        policy: Policy,
        accounts: tuple[Account, ...],
        clients: Mapping[str, OkxClient],
        missing: Mapping[str, str],
        rules: Rules,
        ttl: float,
        approval_channel: str,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_request_id,
    ) -> None:
        self.store = store
        self.policy = policy
        self.rules = rules
        self.clock = clock
        self.accounts = accounts
        self._clients = clients
        self._missing = missing
        self._ttl = ttl
        self._approval_channel = approval_channel
        self._new_id = new_id
        self.overview_seconds = OVERVIEW_SECONDS
        self.jobs_added: Callable[[], None] = lambda: None  # wakes the worker
        # The worker that takes an approval's OKX job in the click's own transaction
        # (owner, lease), and how to hand it that job; None: the worker claims it.
        self.claimant: tuple[str, float] | None = None
        self.run_claimed: Callable[[Job], None] = lambda job: None
        # Told of each finished change and each drift found (metrics count them).
        self.on_change: Callable[[ChangeRequest], None] = lambda request: None
        self.on_drift: Callable[[Drift], None] = lambda drift: None
        # False (AUTOREPAY_DRIFT_CHECK_SECONDS=0): reads still record what they find, but
        # a difference is taken as it is, never alerted.
        self.drift_alerts = True

    @property
    def approval_channel(self) -> str:
        return self._approval_channel

    @property
    def watched(self) -> list[Account]:
        """The accounts the bot can read (those with a usable OKX client), in order."""
        return [account for account in self.accounts if self._client(account) is not None]

    async def status(self, user: str, channel: str, account: Account) -> StatusResult:
        if refusal := await self.policy.may_view(user, channel, account.name):
            await self._refused(user, "status", refusal, account=account.name)
            return refusal
        config = await self._read(account)
        return config if isinstance(config, Unavailable) else AccountState(account, config)

    async def overview(self, user: str, channel: str) -> Overview | Refusal:
        """Every account the user may see, read from OKX at the same time."""
        accounts = await self._viewable(user, channel, "status")
        if isinstance(accounts, Refusal):
            return accounts
        configs = await asyncio.gather(*(self._read_within(a, self.overview_seconds)
                                         for a in accounts))
        return Overview([config if isinstance(config, Unavailable) else
                         AccountState(account, config)
                         for account, config in zip(accounts, configs, strict=True)])

    async def pending(self, user: str, channel: str) -> Listing | Refusal:
        accounts = await self._viewable(user, channel, "pending")
        if isinstance(accounts, Refusal):
            return accounts
        found = await self.store.pending([a.name for a in accounts], self.clock())
        return Listing(found, accounts)

    async def history(self, user: str, channel: str, account: Account | None,
                      count: int) -> Listing | Refusal:
        accounts = await self._viewable(user, channel, "history", account)
        if isinstance(accounts, Refusal):
            return accounts
        found = await self.store.finished([a.name for a in accounts], count)
        drifts = await self.store.drifts(accounts, count)
        found, drifts = newest(found, drifts, count)
        return Listing(found, accounts, drifts, self._approval_channel)

    async def cancel(self, user: str, channel: str, request_id: str
                     ) -> Cancelled | Refusal:
        """The requester or an approver of the account withdraws a pending request."""
        request = await self.store.get(request_id)
        refusal = await self.policy.may_cancel(
            user, channel, request.requester if request else "",
            request.account.name if request else None)
        not_theirs = refusal is not None and refusal.reason == NOT_A_CANCELLER.reason
        if not_theirs or (request is None and refusal is None):
            # One answer for "no such request" and "not yours to cancel": nobody learns
            # which IDs exist on accounts they have no say over.
            if refusal is not None:
                await self._refused(user, "cancel", refusal, request=request_id)
            return Refusal(f"There is no pending request `{request_id}` that you may "
                           "cancel. `/autorepay pending` lists the open ones you can "
                           "see.", refusal.operator_hint if refusal else "")
        if refusal is not None:  # the channel, or membership that can't be checked now
            await self._refused(user, "cancel", refusal, request=request_id)
            return refusal
        assert request is not None
        outcome = await self.store.cancel(request_id, user, self.clock())
        cancelled, done = outcome or (request, False)
        if done:
            self.jobs_added()
            log.info("cancelled id=%s user=%s", request_id, user)
        return Cancelled(cancelled, done)

    async def _viewable(self, user: str, channel: str, what: str,
                        account: Account | None = None) -> list[Account] | Refusal:
        """The accounts (all, or `account`) this user may see; a refusal if none."""
        if refusal := await self.policy.may_view(user, channel,
                                                 account.name if account else None):
            await self._refused(user, what, refusal)
            return refusal
        if account is not None:  # (may_view has just said yes to this one)
            return [account]
        names = await self.policy.viewable(user, [a.name for a in self.accounts])
        return [a for a in self.accounts if a.name in names]

    async def request_change(self, user: str, channel: str, account: Account,
                             desired: bool, reason: str = "") -> RequestResult:
        if refusal := await self.policy.may_request(user, channel, account.name):
            await self._refused(user, "request", refusal, account=account.name, desired=desired)
            return refusal
        if applying := await self.store.applying(account):  # OKX's answer would be stale
            return AlreadyOpen(applying, busy=True)
        config = await self._read(account)
        if isinstance(config, Unavailable):
            return config
        if not config.supports_auto_repay:
            return await self._no_change(user, NotApplicable(account, config))
        if config.auto_repay == desired:
            return await self._no_change(user, NoChangeNeeded(account, config))
        now = self.clock()
        request = ChangeRequest(
            id=self._new_id(), requester=user, account=account, desired=desired,
            status=Status.PENDING, created_at=now, expires_at=now + self._ttl,
            origin_channel=channel, approval_channel=self._approval_channel,
            okx_uid=config.uid, okx_label=config.label, reason=reason)
        added = await self.store.add(request, now)
        if added.admission in (Admission.DUPLICATE, Admission.BUSY):
            log.info("request refused id=%s requester=%s account=%s: %s is open (%s)",
                     request.id, user, account, added.request.id, added.admission)
            return AlreadyOpen(added.request, added.admission is Admission.BUSY)
        assert added.post_job is not None
        self.jobs_added()
        log.info("request stored id=%s requester=%s account=%s desired=%s%s",
                 request.id, user, account, desired,
                 f" supersedes={added.superseded.id}" if added.superseded else "")
        return Requested(request, config, added.post_job, added.superseded)

    async def posted(self, job: Job, channel: str, ts: str) -> None:
        await self.store.posted(job, channel, ts, self.clock())
        self.jobs_added()

    async def abandon(self, job: Job, reason: str) -> None:
        """The approval can't be posted: the request must not stay pending unseen."""
        request = await self.store.get(job.request_id)
        if request is None or request.status is not Status.PENDING:
            return
        failed = request.moved_to(Status.FAILED, error_code=reason,
                                  error_text="the approval message could not be posted")
        await self.store.abandon(failed, job, self.clock())
        self.jobs_added()
        log.warning("approval not posted id=%s channel=%s reason=%s: invite the bot to that "
                    "channel, or set AUTOREPAY_APPROVAL_CHANNEL to one it can post in",
                    request.id, request.approval_channel, reason)

    async def click(self, user: str, request_id: str, approve: bool) -> Outcome | Refusal:
        request = await self.store.get(request_id)
        if request is None:
            return Refusal("This request is not known to the bot (it may have been made "
                           "with another database).")
        if refusal := await self.policy.may_approve(user, request.account.name):
            await self._refused(user, "approve" if approve else "deny", refusal, request=request_id)
            return refusal
        decided = await self.store.decide_claiming(
            request_id, user, approve, self.clock(), self.rules, claimant=self.claimant)
        if decided is None:
            return Refusal("This request is not known to the bot (it may have been made "
                           "with another database).")
        outcome, claimed = decided
        log.info("click id=%s user=%s verdict=%s", request_id, user, outcome.verdict)
        if claimed is not None:
            self.run_claimed(claimed)  # the OKX write starts now, in this process
        if outcome.changed:
            self.jobs_added()
        return outcome

    async def execute(self, request: ChangeRequest, job: Job) -> None:
        """The okx_apply job: make the OKX call for an approved request, record the result
        (done/failed) and the jobs that announce it, in one transaction.

        A retry after a crash writes again: setting auto repay is idempotent.
        """
        if request.status is not Status.APPROVED:
            return  # recorded by an earlier attempt that was cut off before its job closed

        async def still_ours() -> bool:  # (a paused replica whose lease ran out: no)
            lease = self.claimant[1] if self.claimant else LEASE_SECONDS
            return await self.store.jobs.confirm(job, self.clock() + lease)

        final = await self._apply(request, still_ours)
        if await self.store.finish(final, job, self.clock()):
            self.on_change(final)
        self.jobs_added()
        log.info("executed id=%s status=%s result=%s code=%s", final.id, final.status,
                 final.result, final.error_code or "-")

    async def observe(self, account: Account) -> Reading | Unavailable:
        """Read the account's configuration now (through its client, so within OKX's
        rate limits) and record it as the account's reading: the first read is the
        baseline, a state that differs from the last one known is a drift, alerted in
        the approval channel. OKX not answering is a warning and records nothing."""
        version = await self.store.reading_version(account)  # (before the read is sent)
        config = await self._read(account)
        if isinstance(config, Unavailable):
            return config
        return await self.record(account, config, version)

    async def record(self, account: Account, config: AccountConfig, version: int
                     ) -> Reading:
        """Record a read of the account sent at reading `version` (see `observe`)."""
        now = self.clock()
        drift = await self.store.observe(account, config, now, version,
                                         alert=self.drift_alerts)
        if drift is not None:
            log.warning("drift account=%s uid=%s auto_repay=%s was=%s drift=%d: changed "
                        "outside the bot", account, drift.uid, drift.auto_repay, drift.was,
                        drift.id)
            self.on_drift(drift)
            self.jobs_added()
        return Reading(account, config.uid, config.auto_repay, now, Source.READ)

    async def drift_alerted(self, job: Job, drift: Drift, channel: str, ts: str) -> None:
        await self.store.drift_alerted(job, drift.id, channel, ts, self.clock())
        log.info("drift alert posted drift=%d account=%s ts=%s", drift.id, drift.account, ts)

    async def expire_due(self) -> list[ChangeRequest]:
        expired = await self.store.expire_due(self.clock())
        if expired:
            self.jobs_added()
            for request in expired:
                log.info("expired id=%s", request.id)
        return expired

    async def _apply(self, request: ChangeRequest,
                     proceed: Callable[[], Awaitable[bool]] | None = None) -> ChangeRequest:
        client = self._client(request.account)
        if client is None:
            warn("account unavailable", request.account, "credentials", request=request.id,
                 detail=self._missing_detail(request.account))
            changed = request.account not in self.accounts
            return request.moved_to(Status.FAILED, error_code="credentials",
                                    error_text=RECONFIGURED if changed else NOT_SET_UP)
        try:
            confirmed = await client.set_auto_repay(request.desired, proceed=proceed)
        except OkxWithdrawnError as exc:
            if exc.code == "unconfirmed":
                raise Unconfirmed(f"request {request.id}: its job could not be confirmed as "
                                  "this worker's; not written") from None
            raise Lost(f"request {request.id}: its job was taken over; not written") from None
        except OkxError as exc:
            warn("write failed", request.account, exc.code, request=request.id,
                 **operator_detail(exc))
            return request.moved_to(Status.FAILED, error_code=exc.code, error_text=str(exc))
        try:
            config = await client.get_account_config()
        except OkxError as exc:  # the write was answered; only the read-back failed
            log.warning("read-back failed id=%s code=%s", request.id, exc.code)
            if confirmed != request.desired:  # OKX's own answer says it did not switch
                return request.moved_to(
                    Status.FAILED, result=confirmed, error_code="mismatch",
                    error_text=f"OKX answered that auto repay is {'ON' if confirmed else 'OFF'}"
                    f", not {'ON' if request.desired else 'OFF'} as asked.")
            return request.moved_to(Status.DONE, result=confirmed)
        if config.auto_repay != request.desired:
            return request.moved_to(
                Status.FAILED, result=config.auto_repay, error_code="mismatch",
                error_text="OKX accepted the change but reads back the old state.",
                okx_uid=config.uid, okx_label=config.label)
        return request.moved_to(Status.DONE, result=config.auto_repay, okx_uid=config.uid,
                                okx_label=config.label)

    async def _read_within(self, account: Account, seconds: float
                           ) -> AccountConfig | Unavailable:
        """One slow account must not hold up the others' lines in `status`."""
        try:
            return await asyncio.wait_for(self._read(account), seconds)
        except TimeoutError:
            log.warning("status read timed out account=%s after=%gs", account, seconds)
            return Unavailable(account, f"OKX did not answer within {seconds:g} s; ask "
                               f"again with `/autorepay status {account.name}`.")

    def _client(self, account: Account) -> OkxClient | None:
        """The account's client, if it is configured as it was when asked about: a
        request stored for a demo account never goes to a live one of the same name."""
        return self._clients.get(account.name) if account in self.accounts else None

    async def _read(self, account: Account) -> AccountConfig | Unavailable:
        client = self._client(account)
        if client is None:
            warn("account unavailable", account, "credentials",
                 detail=self._missing_detail(account))
            return Unavailable(account, NOT_SET_UP)
        try:
            return await client.get_account_config()
        except OkxError as exc:
            warn("account unavailable", account, exc.code, **operator_detail(exc))
            return Unavailable(account, str(exc))

    def _missing_detail(self, account: Account) -> str:
        if account not in self.accounts:
            return "not in AUTOREPAY_ACCOUNTS (or its :demo mark changed)"
        return self._missing.get(account.name, "no OKX client for this account")

    async def _no_change(self, user: str, result: NoChangeNeeded | NotApplicable) -> RequestResult:
        event = "no_change_needed" if isinstance(result, NoChangeNeeded) else "not_applicable"
        await self.store.audit(event, user, now=self.clock(), account=result.account.name,
                         acct_lv=result.config.acct_lv, auto_repay=result.config.auto_repay)
        return result

    async def _refused(self, user: str, what: str, refusal: Refusal, **detail: str | bool) -> None:
        fields = {**detail, "hint": refusal.operator_hint}
        log.info("refused user=%s action=%s reason=%r%s", user, what, refusal.reason,
                 "".join(f" {key}={value}" for key, value in fields.items() if value != ""))
        request_id = str(detail.pop("request", ""))  # its own column: found by request
        await self.store.audit(f"refused:{what}", user, request_id, now=self.clock(),
                               reason=refusal.reason, **detail)


def newest(requests: list[ChangeRequest], drifts: list[Drift], count: int
           ) -> tuple[list[ChangeRequest], list[Drift]]:
    """The last `count` of both together, by when each was asked for or found."""
    both = newest_first(requests, drifts)
    if len(both) <= count:
        return requests, drifts
    if count <= 0:
        return [], []
    cut = happened(both[count - 1])  # (ties at the cut: kept, a line or two over)
    return ([r for r in requests if happened(r) >= cut], [d for d in drifts if happened(d) >= cut])


def warn(event: str, account: Account, code: str, **detail: str) -> None:
    """One WARNING line for the operator: what happened, to which account, and the details
    traders are spared (which variable to set, what failed underneath)."""
    fields = "".join(f" {key}={value}" for key, value in detail.items() if value)
    log.warning("%s account=%s code=%s%s", event, account, code, fields)


def operator_detail(exc: OkxError) -> dict[str, str]:
    """OKX's own message (or, for the client's own codes, what failed underneath) and
    what whoever runs the bot could do about it."""
    return {"msg": repr(exc.msg), "hint": exc.operator_hint}
