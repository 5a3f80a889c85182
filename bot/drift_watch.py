"""The drift watch (SPEC §9): every interval, each account's configuration is read and
recorded (bot.service.observe); a state that differs from the last one the bot knew,
while no change of its own is in flight, is alerted once in the approval channel.

The reads go one at a time, spread over the interval, and never closer than OKX's
window apart: the watch holds at most one of the 5-per-2 s slots an account's uid has
on account/config, and the rest stay free for traders' commands and approvals (which
go through the same rate limiter).

With several replicas the watch runs on one: before each read it takes (or renews) the
turn "drift" for TURN_INTERVALS intervals, so when its holder dies another replica
takes over within that; a replica that stops gives its turns up at once
(bot.app.Runtime.stop).
Even two watchers at once would alert a drift once: the store records a read only if
nothing else was recorded while it was on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.accounts import Account
from bot.database_watch import unreachable
from bot.service import AutoRepay

log = logging.getLogger("bot.drift_watch")

TURN_INTERVALS = 1.5  # a turn outlives its holder by this many intervals at most
MIN_GAP_SECONDS = 2.0  # OKX's rate-limit window: reads of the watch never overlap in it

Sleep = Callable[[float], Awaitable[None]]


class DriftWatch:
    def __init__(self, service: AutoRepay, interval: float, owner: str, *,
                 clock: Callable[[], float] = time.time, sleep: Sleep | None = None) -> None:
        self._service = service
        self._interval = interval
        self._owner = owner
        self._clock = clock
        self._stopping = asyncio.Event()
        self._sleep = sleep or self._pause

    @property
    def gap(self) -> float:
        """Seconds between the end of one read and the start of the next."""
        return max(self._interval / max(1, len(self._service.watched)), MIN_GAP_SECONDS)

    async def check_all(self) -> None:
        """One round: every account the bot can read, one at a time, a `gap` apart,
        while this replica holds the turn (another replica's round: nothing)."""
        for n, account in enumerate(self._service.watched):
            if n:
                await self._sleep(self.gap)
            if self._stopping.is_set() or not await self._my_turn(self._clock()):
                return
            await self.check(account)

    async def check(self, account: Account) -> None:
        """Read and record one account. OKX failing is one WARNING (from the service);
        the database failing, one here. Nothing is recorded either way."""
        try:
            await self._service.observe(account)
        except Exception as exc:  # (the loop must outlive any one read)
            log.warning("drift watch: %s could not be checked (%s); next round in %.0f s",
                        account, type(exc).__name__, self._interval,
                        exc_info=not unreachable(exc))

    async def run(self, stopping: asyncio.Event) -> None:
        """Every interval, a round, while this replica holds the turn; the first one
        interval after start (the start-up read is the baseline)."""
        self._stopping = stopping
        loop = asyncio.get_running_loop()  # (paced by the monotonic clock)
        started = loop.time()
        while not await self._stopped_within(started + self._interval - loop.time()):
            started = loop.time()
            await self.check_all()

    async def _my_turn(self, now: float) -> bool:
        until = now + TURN_INTERVALS * self._interval
        try:
            return await self._service.store.take_turn("drift", self._owner, now, until)
        except Exception as exc:
            log.warning("drift watch: its turn could not be taken (%s); trying again in "
                        "%.0f s", type(exc).__name__, self._interval,
                        exc_info=not unreachable(exc))
            return False

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(0.0, seconds))
        return self._stopping.is_set()

    async def _pause(self, seconds: float) -> None:
        """The pause between two reads, cut short by a stop."""
        await self._stopped_within(seconds)
