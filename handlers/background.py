"""The expiry sweep: requests nobody decided in time become expired (their
announcements are jobs, stored with the expiry). The loop never dies."""

from __future__ import annotations

import asyncio
import logging

from bot.service import AutoRepay

log = logging.getLogger("handlers.background")


async def expire_forever(service: AutoRepay, interval: float) -> None:
    while True:
        try:
            # Shielded: a stop never cuts a transaction (and SQLite's lock) in half.
            await asyncio.shield(service.expire_due())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("expiry sweep failed; trying again in %.0f s", interval)
        await asyncio.sleep(interval)
