"""The expiry sweep: requests nobody decided in time become expired (their
announcements are jobs, stored with the expiry). The loop never dies of an error, and a
stop ends it between sweeps, never half way through a transaction.

With several replicas the sweep runs on one at a time: each sweep first takes (or
renews) the turn "expiry" for TURN_SWEEPS intervals, so when its holder dies another
replica takes over after that. Each expiry is one conditional transaction anyway, so
even two sweeps at once would announce it once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.database_watch import unreachable
from bot.service import AutoRepay

log = logging.getLogger("handlers.background")
TURN_SWEEPS = 3


async def expire_forever(service: AutoRepay, interval: float, stopping: asyncio.Event,
                         owner: str) -> None:
    while not stopping.is_set():
        try:
            now = service.clock()
            if await service.store.take_turn("expiry", owner, now,
                                             now + TURN_SWEEPS * interval):
                await service.expire_due()
        except Exception as exc:
            log.warning("expiry sweep failed (%s); trying again in %.0f s",
                        type(exc).__name__, interval, exc_info=not unreachable(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
