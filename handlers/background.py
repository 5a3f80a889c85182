"""Background duties: expiring requests nobody decided in time, and (at start-up)
finishing what a crash interrupted."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.approvals import ChangeRequest
from bot.service import AutoRepay
from handlers.announce import Announcer, report
from handlers.commands import put_up_for_approval

log = logging.getLogger("handlers.background")


async def expire_now(service: AutoRepay, announcer: Announcer) -> list[ChangeRequest]:
    expired = await service.expire_due()
    for request in expired:
        log.info("expired id=%s", request.id)
        await report(service, announcer, request)
    return expired


async def expire_forever(service: AutoRepay, announcer: Announcer, interval: float) -> None:
    while True:
        await expire_now(service, announcer)
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class LeftOver:
    """What a crash left half done, read at start-up before any new work is taken (a
    request made after the start is not left over, even while it waits for its post)."""

    interrupted: list[ChangeRequest]
    unannounced: list[ChangeRequest]
    unposted: list[ChangeRequest]


async def left_over(service: AutoRepay) -> LeftOver:
    return LeftOver(await service.interrupted(), await service.store.unannounced(),
                    await service.store.unposted())


async def recover(service: AutoRepay, announcer: Announcer, left: LeftOver) -> None:
    """Finish every request a crash left half done; each says in its thread it resumed."""
    for request in left.interrupted:
        log.info("resuming approved request id=%s", request.id)
        await report(service, announcer, await service.execute(request), resumed=True)
    for request in left.unannounced:
        log.info("announcing outcome id=%s status=%s", request.id, request.status)
        await report(service, announcer, request, resumed=True)
    for request in left.unposted:
        log.info("posting approval id=%s", request.id)
        note = await put_up_for_approval(request, not request.desired, service, announcer)
        await announcer.tell_requester(request, note)
