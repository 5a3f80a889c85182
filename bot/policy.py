"""Who may ask for a change, see status, or approve: one object, asked by every listener.

Identities are Slack user IDs taken from the signed payload. User groups (S…) are
resolved through an injected lookup (Slack's usergroups.users.list in production) and
cached for `cache_ttl` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

GroupLookup = Callable[[str], Awaitable[Iterable[str]]]
log = logging.getLogger("bot.policy")


class Role(StrEnum):
    REQUESTER = "requester"
    APPROVER = "approver"


class GroupLookupError(Exception):
    """Slack could not tell us who is in a user group."""


@dataclass(frozen=True)
class Refusal:
    """Why a user may not do something, in words for that user; `operator_hint` (for the
    log, never shown to them) names the setting that decided it."""

    reason: str
    operator_hint: str = ""


class Policy:
    def __init__(
        self,
        *,
        requesters: Iterable[str],
        approvers: Iterable[str],
        allowed_channels: Iterable[str] = (),
        group_members: GroupLookup,
        cache_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._members = {Role.REQUESTER: tuple(requesters), Role.APPROVER: tuple(approvers)}
        self._channels = frozenset(allowed_channels)
        self._lookup = group_members
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def has_role(self, user: str, role: Role) -> bool:
        entries = self._members[role]
        if user in entries:
            return True
        for group in (entry for entry in entries if entry.startswith("S")):
            if user in await self._group(group):
                return True
        return False

    async def may_request(self, user: str, channel: str) -> Refusal | None:
        if refusal := self._channel_refusal(channel):
            return refusal
        if await self.has_role(user, Role.REQUESTER):
            return None
        return Refusal("You are not on the list of people who may request auto repay "
                       "changes; ask whoever runs the bot if you should be.",
                       operator_hint="AUTOREPAY_REQUESTERS")

    async def may_view(self, user: str, channel: str) -> Refusal | None:
        if refusal := self._channel_refusal(channel):
            return refusal
        if await self.has_role(user, Role.REQUESTER) or await self.has_role(user, Role.APPROVER):
            return None
        return Refusal("Only requesters and approvers of auto repay changes may see its "
                       "status.", operator_hint="AUTOREPAY_REQUESTERS, AUTOREPAY_APPROVERS")

    async def may_approve(self, user: str) -> Refusal | None:
        if await self.has_role(user, Role.APPROVER):
            return None
        return Refusal("You are not an approver for auto repay changes; ask whoever runs the "
                       "bot if you should be.", operator_hint="AUTOREPAY_APPROVERS")

    def _channel_refusal(self, channel: str) -> Refusal | None:
        if not self._channels or channel in self._channels:
            return None
        where = ", ".join(f"<#{c}>" for c in sorted(self._channels))
        return Refusal(f"/autorepay can't be used in this channel. Use it in {where}.",
                       operator_hint="AUTOREPAY_ALLOWED_CHANNELS")

    async def _group(self, group: str) -> frozenset[str]:
        now = self._clock()
        cached = self._cache.get(group)
        if cached and now - cached[0] < self._cache_ttl:
            return cached[1]
        try:
            members = frozenset(await self._lookup(group))
        except GroupLookupError as exc:
            log.warning("usergroup lookup failed group=%s error=%s", group, exc)
            # A recent answer beats locking everyone out; no answer at all means no access.
            return cached[1] if cached else frozenset()
        self._cache[group] = (now, members)
        return members
