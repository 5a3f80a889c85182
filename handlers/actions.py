"""Approve / Deny clicks: ack() at once, then record the decision (and the jobs it
causes, in one transaction). Everything after that is the worker's (bot.worker)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.inflight import Inflight
from bot.policy import Refusal
from bot.service import AutoRepay
from handlers import blocks

log = logging.getLogger("handlers.actions")


def register(app: AsyncApp, service: AutoRepay, inflight: Inflight) -> None:
    async def approve(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        async with inflight.track(after_acks=False):
            await click(True, body, action, respond, service)

    async def deny(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                   respond: AsyncRespond) -> None:
        await ack()
        async with inflight.track(after_acks=False):
            await click(False, body, action, respond, service)

    app.action(blocks.APPROVE)(approve)
    app.action(blocks.DENY)(deny)


async def click(approve: bool, body: dict[str, Any], action: dict[str, Any],
                respond: AsyncRespond, service: AutoRepay) -> None:
    user = str((body.get("user") or {}).get("id", ""))
    result = await service.click(user, str(action.get("value", "")), approve)
    if isinstance(result, Refusal):
        await tell_clicker(respond, blocks.refused(result))
        return
    feedback = blocks.click_feedback(result, service.rules.approvals_required)
    if feedback is not None:
        await tell_clicker(respond, feedback)


async def tell_clicker(respond: AsyncRespond, message: blocks.Message) -> None:
    await respond(**message.payload(), response_type="ephemeral", replace_original=False)
