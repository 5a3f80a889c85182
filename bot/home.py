"""What one person's App Home shows (SPEC §9), on plain data: the accounts they may see,
each with its last known state and when it was known; what waits for approval; the
last changes and drift alerts.

A reading older than `max_age` is read afresh through the service (the account's OKX
client, hence within its rate limits), all accounts at once. Opening Home is something
many people do at the same moment (a desk at 9:00), and OKX must not pay for each of
them: one read per account is in flight at a time and everyone who needs it shares it
(single flight), and its answer serves whoever comes next while it is fresh. Nobody
waits longer than the service's `overview_seconds` for a read: the view shows the old
reading and says it could not be refreshed, while the read goes on for the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.accounts import Account
from bot.approvals import ChangeRequest
from bot.policy import MembershipUnknown, Role
from bot.readings import Drift, Reading, newest_first
from bot.service import AutoRepay, Unavailable

log = logging.getLogger("bot.home")

MAX_AGE = 30.0  # seconds: an older reading is read afresh
RETRY_AFTER = 5.0  # seconds: a read that failed is not tried again sooner, however many open
RECENT = 10  # changes and drift alerts shown

Read = Reading | Unavailable


@dataclass(frozen=True)
class AccountLine:
    account: Account
    reading: Reading | None  # the last known state; None: never known
    problem: str = ""  # why it could not be read afresh just now (for traders)


@dataclass(frozen=True)
class Dashboard:
    """Home for someone who may see at least one account."""

    accounts: list[AccountLine]
    pending: list[ChangeRequest]  # oldest first
    recent: list[ChangeRequest | Drift]  # finished requests and drifts, newest first
    unchecked: bool  # accounts were left out: their user groups could not be checked
    now: float


@dataclass(frozen=True)
class NoAccess:
    """Home for someone who may see no account; `unchecked`: not a no, but user groups
    that could not be checked (Slack did not answer)."""

    unchecked: bool


class Home:
    def __init__(self, service: AutoRepay, *, max_age: float = MAX_AGE,
                 retry_after: float = RETRY_AFTER) -> None:
        self._service = service
        self._max_age = max_age
        self._retry_after = retry_after
        self._reads: dict[Account, asyncio.Task[Read]] = {}  # the one in flight
        self._last: dict[Account, tuple[float, Read]] = {}  # (when it ended, its answer)

    async def gather(self, user: str) -> Dashboard | NoAccess:
        accounts, unchecked = await self._visible(user)
        if not accounts:
            return NoAccess(unchecked)
        lines, (pending, recent) = await asyncio.gather(self._states(accounts),
                                                        self._requests(accounts))
        return Dashboard(lines, pending, recent, unchecked, self._service.clock())

    async def _visible(self, user: str) -> tuple[list[Account], bool]:
        """The accounts `user` may see (requester or approver of it, user groups
        included), and whether some were left out because a group can't be checked."""
        seen, unchecked = [], False
        for account in self._service.accounts:
            try:
                if await self._service.policy.has_role(user, Role.REQUESTER, Role.APPROVER,
                                                       account=account.name):
                    seen.append(account)
            except MembershipUnknown:
                unchecked = True
        return seen, unchecked

    async def _requests(self, accounts: Sequence[Account]
                        ) -> tuple[list[ChangeRequest], list[ChangeRequest | Drift]]:
        store, names = self._service.store, [a.name for a in accounts]
        pending = await store.pending(names, self._service.clock())
        finished = await store.finished(names, RECENT)
        drifts = await store.drifts(accounts, RECENT)
        return pending, newest_first(finished, drifts)[:RECENT]

    async def _states(self, accounts: Sequence[Account]) -> list[AccountLine]:
        known = await self._service.store.readings(accounts)
        return list(await asyncio.gather(*(self._state(a, known.get(a)) for a in accounts)))

    async def _state(self, account: Account, reading: Reading | None) -> AccountLine:
        if reading is not None and self._age(reading.read_at) < self._max_age:
            return AccountLine(account, reading)
        seconds = self._service.overview_seconds
        try:
            answer = await asyncio.wait_for(self._read(account), seconds)
        except TimeoutError:
            return AccountLine(account, reading, f"OKX did not answer within {seconds:g} s.")
        if isinstance(answer, Unavailable):
            return AccountLine(account, reading, answer.reason)
        newer = reading is not None and reading.read_at > answer.read_at
        return AccountLine(account, reading if newer else answer)

    async def _read(self, account: Account) -> Read:
        """The account's read in flight, else its last answer while fresh, else a new
        read; the read itself is not cancelled when this caller stops waiting."""
        last = self._last.get(account)
        if account not in self._reads:
            if last is not None and self._reusable(*last):
                return last[1]
            task = asyncio.create_task(self._observe(account))
            task.add_done_callback(lambda done: _log_failure(account, done))
            self._reads[account] = task
        return await asyncio.shield(self._reads[account])

    async def _observe(self, account: Account) -> Read:
        try:
            answer = await self._service.observe(account)
        finally:
            del self._reads[account]
        self._last[account] = (self._service.clock(), answer)
        return answer

    def _reusable(self, at: float, answer: Read) -> bool:
        limit = self._retry_after if isinstance(answer, Unavailable) else self._max_age
        return self._age(at) < limit

    def _age(self, at: float) -> float:
        return self._service.clock() - at


def _log_failure(account: Account, task: asyncio.Task[Read]) -> None:
    """A read nobody waits for any more must not fail unseen (OKX's own refusals are
    answers, not failures: the service turns them into Unavailable)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("home read failed account=%s error=%s", account, type(error).__name__)
