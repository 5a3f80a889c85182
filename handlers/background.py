"""The expiry sweep: requests nobody decided in time become expired (their
announcements are jobs, stored with the expiry). The loop never dies of an error, and a
stop ends it between sweeps, never half way through a transaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.service import AutoRepay

log = logging.getLogger("handlers.background")


async def expire_forever(service: AutoRepay, interval: float, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            await service.expire_due()
        except Exception:
            log.exception("expiry sweep failed; trying again in %.0f s", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
