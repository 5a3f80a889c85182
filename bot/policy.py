"""Who may ask for a change, see status, or approve: one object, asked by every listener.

Identities are Slack user IDs taken from the signed payload. User groups (S…) are
resolved through an injected lookup (Slack's usergroups.users.list in production):

- one lookup per group at a time: callers arriving while it runs wait for its answer;
- an answer is trusted for `cache_ttl` seconds (60), then Slack is asked again;
- when Slack cannot answer, the last answer serves while younger than `stale_ttl`
  (an hour); past that, or with none at all, membership is *unknown*: the user is told
  it could not be checked, which is not the same as being told no;
- with a last answer to fall back on, a caller waits at most `stale_wait` (0.5 s) for
  Slack, so a hung lookup never holds up a click (the lookup itself goes on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

GroupLookup = Callable[[str], Awaitable[Iterable[str]]]
log = logging.getLogger("bot.policy")


class Role(StrEnum):
    REQUESTER = "requester"
    APPROVER = "approver"


class GroupLookupError(Exception):
    """Slack could not tell us who is in a user group."""


class MembershipUnknown(Exception):
    """Whether the user holds the role hangs on user groups nobody can resolve now."""

    def __init__(self, groups: Iterable[str]) -> None:
        self.groups = tuple(groups)
        super().__init__(", ".join(self.groups))


@dataclass(frozen=True)
class Refusal:
    """Why a user may not do something, in words for that user; `operator_hint` (for the
    log, never shown to them) names the setting that decided it."""

    reason: str
    operator_hint: str = ""


NOT_A_REQUESTER = Refusal(
    "You are not on the list of people who may request auto repay changes; ask whoever "
    "runs the bot if you should be.", operator_hint="AUTOREPAY_REQUESTERS")
NOT_A_VIEWER = Refusal(
    "Only requesters and approvers of auto repay changes may see its status.",
    operator_hint="AUTOREPAY_REQUESTERS, AUTOREPAY_APPROVERS")
NOT_AN_APPROVER = Refusal(
    "You are not an approver for auto repay changes; ask whoever runs the bot if you "
    "should be.", operator_hint="AUTOREPAY_APPROVERS")


NOT_A_CANCELLER = Refusal(
    "Only the person who asked or an approver of that account may cancel a request "
    "(`/autorepay pending` shows the IDs).",
    operator_hint="AUTOREPAY_APPROVERS")


def membership_unchecked(unknown: MembershipUnknown) -> Refusal:
    return Refusal(
        "I couldn't check your membership of the Slack user groups allowed to do this "
        "(Slack did not answer), so nothing was done. Please try again in a moment.",
        operator_hint=f"usergroups.users.list failed for {unknown}")


@dataclass(frozen=True)
class Members:
    """Slack's last answer for one group, and when it came (by the policy's clock)."""

    users: frozenset[str]
    at: float


class Policy:
    def __init__(
        self,
        *,
        requesters: Iterable[str],
        approvers: Iterable[str],
        per_account: Mapping[str, tuple[Iterable[str], Iterable[str]]] | None = None,
        allowed_channels: Iterable[str] = (),
        group_members: GroupLookup,
        cache_ttl: float = 60.0,
        stale_ttl: float = 3600.0,
        lookup_timeout: float = 10.0,
        stale_wait: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._members = {Role.REQUESTER: tuple(requesters), Role.APPROVER: tuple(approvers)}
        # AUTOREPAY_<NAME>_REQUESTERS / _APPROVERS: replace the lists above for an account.
        self._per_account = {name: {Role.REQUESTER: tuple(asks), Role.APPROVER: tuple(oks)}
                             for name, (asks, oks) in (per_account or {}).items()}
        self._channels = frozenset(allowed_channels)
        self._lookup = group_members
        self._cache_ttl = cache_ttl
        self._stale_ttl = stale_ttl
        self._lookup_timeout = lookup_timeout
        self._stale_wait = stale_wait
        self._clock = clock
        self._known: dict[str, Members] = {}
        self._lookups: dict[str, asyncio.Task[None]] = {}  # the one in flight per group

    def _entries(self, roles: tuple[Role, ...], account: str | None) -> list[str]:
        """Who holds `roles` for `account`; for None, for any account at all."""
        if account is not None:
            lists = [self._per_account.get(account, self._members)]
        else:
            lists = [self._members, *self._per_account.values()]
        return [entry for members in lists for role in roles for entry in members[role]]

    async def has_role(self, user: str, *roles: Role, account: str | None = None) -> bool:
        """Whether `user` holds any of `roles` for `account` (None: for any account).
        Raises MembershipUnknown when the answer hangs on user groups that cannot be
        resolved now."""
        entries = self._entries(roles, account)
        if user in entries:
            return True
        unknown = []
        for group in dict.fromkeys(entry for entry in entries if entry.startswith("S")):
            users = await self._group(group)
            if users is None:
                unknown.append(group)
            elif user in users:
                return True
        if unknown:
            raise MembershipUnknown(unknown)
        return False

    async def may_request(self, user: str, channel: str, account: str) -> Refusal | None:
        if refusal := self._channel_refusal(channel):
            return refusal
        return await self._check(user, (Role.REQUESTER,), account, NOT_A_REQUESTER)

    async def may_view(self, user: str, channel: str,
                       account: str | None = None) -> Refusal | None:
        """For one account; for None, whether the user may see any account at all."""
        if refusal := self._channel_refusal(channel):
            return refusal
        return await self._check(user, (Role.REQUESTER, Role.APPROVER), account,
                                 NOT_A_VIEWER)

    async def may_approve(self, user: str, account: str) -> Refusal | None:
        return await self._check(user, (Role.APPROVER,), account, NOT_AN_APPROVER)

    async def may_cancel(self, user: str, channel: str, requester: str,
                         account: str | None) -> Refusal | None:
        """The requester, or an approver of the account (None: of any account)."""
        if refusal := self._channel_refusal(channel):
            return refusal
        if user == requester:
            return None
        return await self._check(user, (Role.APPROVER,), account, NOT_A_CANCELLER)

    async def viewable(self, user: str, accounts: Iterable[str]) -> list[str]:
        """The accounts among `accounts` that `user` may see (status, pending, history);
        one whose membership can't be checked now is left out."""
        seen = []
        for account in accounts:
            if await self._check(user, (Role.REQUESTER, Role.APPROVER), account,
                                 NOT_A_VIEWER) is None:
                seen.append(account)
        return seen

    async def _check(self, user: str, roles: tuple[Role, ...], account: str | None,
                     refusal: Refusal) -> Refusal | None:
        try:
            if await self.has_role(user, *roles, account=account):
                return None
        except MembershipUnknown as unknown:
            return membership_unchecked(unknown)
        if account in self._per_account:  # its own lists decided: name them in the log
            variable = account.upper().replace("-", "_")
            hint = refusal.operator_hint.replace("AUTOREPAY_", f"AUTOREPAY_{variable}_")
            return Refusal(refusal.reason, hint)
        return refusal

    def _channel_refusal(self, channel: str) -> Refusal | None:
        if not self._channels or channel in self._channels:
            return None
        where = ", ".join(f"<#{c}>" for c in sorted(self._channels))
        return Refusal(f"/autorepay can't be used in this channel. Use it in {where}.",
                       operator_hint="AUTOREPAY_ALLOWED_CHANNELS")

    async def _group(self, group: str) -> frozenset[str] | None:
        """The group's members: a fresh answer, else Slack's (one lookup shared by every
        caller), else the last answer while not too old; None when nobody knows."""
        if (known := self._known.get(group)) and self._age(known) < self._cache_ttl:
            return known.users
        if group not in self._lookups:
            self._lookups[group] = asyncio.create_task(self._refresh(group))
        # A caller that gives up (its request cancelled) leaves the lookup to the others.
        # With a last answer to fall back on, Slack gets `stale_wait` seconds: a click
        # must not wait 10 s for a lookup that hangs (the lookup goes on for the next).
        patience = self._stale_wait if known and self._age(known) < self._stale_ttl else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._lookups[group]), patience)
        if (known := self._known.get(group)) and self._age(known) < self._stale_ttl:
            return known.users
        return None

    async def _refresh(self, group: str) -> None:
        try:
            async with asyncio.timeout(self._lookup_timeout):
                users = frozenset(await self._lookup(group))
        except (GroupLookupError, TimeoutError) as exc:
            log.warning("usergroup lookup failed group=%s error=%s", group,
                        str(exc) or "timed out")
        # Whatever else went wrong underneath, the user must hear that membership could
        # not be checked rather than get no answer; the traceback goes to the log.
        except Exception:
            log.exception("usergroup lookup failed group=%s", group)
        else:
            self._known[group] = Members(users, self._clock())
        finally:
            del self._lookups[group]

    def _age(self, members: Members) -> float:
        return self._clock() - members.at
