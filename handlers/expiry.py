"""Expiring requests nobody decided in time, and saying so in Slack."""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError

from bot.approvals import ChangeRequest
from bot.service import AutoRepay
from handlers.announce import Announcer

log = logging.getLogger("handlers.expiry")


async def expire_now(service: AutoRepay, announcer: Announcer) -> list[ChangeRequest]:
    expired = service.expire_due()
    for request in expired:
        log.info("expired id=%s", request.id)
        try:
            await announcer.closed(request)
        except SlackApiError as exc:  # the next sweep must still run
            log.warning("could not announce expiry id=%s error=%s", request.id,
                        exc.response.get("error"))
    return expired


async def expire_forever(service: AutoRepay, announcer: Announcer, interval: float) -> None:
    while True:
        await expire_now(service, announcer)
        await asyncio.sleep(interval)
