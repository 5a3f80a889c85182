"""Approve / Deny clicks: ack() at once, then decide atomically and, once, call OKX."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.approvals import Outcome, Verdict
from bot.inflight import Inflight
from bot.policy import Refusal
from bot.service import AutoRepay
from handlers import blocks
from handlers.announce import Announcer, report

log = logging.getLogger("handlers.actions")


def register(app: AsyncApp, service: AutoRepay, announcer: Announcer,
             inflight: Inflight) -> None:
    async def approve(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        async with inflight.track(after_acks=False):
            await click(True, body, action, respond, service, announcer)

    async def deny(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                   respond: AsyncRespond) -> None:
        await ack()
        async with inflight.track(after_acks=False):
            await click(False, body, action, respond, service, announcer)

    app.action(blocks.APPROVE)(approve)
    app.action(blocks.DENY)(deny)


async def click(approve: bool, body: dict[str, Any], action: dict[str, Any],
                respond: AsyncRespond, service: AutoRepay, announcer: Announcer) -> None:
    user = str((body.get("user") or {}).get("id", ""))
    result = await service.click(user, str(action.get("value", "")), approve)
    if isinstance(result, Refusal):
        await tell_clicker(respond, blocks.refused(result))
        return
    await follow_up(result, service, announcer)
    feedback = blocks.click_feedback(result, service.rules.approvals_required)
    if feedback is not None:
        await tell_clicker(respond, feedback)


async def follow_up(outcome: Outcome, service: AutoRepay, announcer: Announcer) -> None:
    request = outcome.request
    if outcome.verdict is Verdict.APPROVED:  # exactly one click gets here per request
        await announcer.progress(request)
        await report(service, announcer, await service.execute(request))
    elif outcome.verdict in (Verdict.DENIED, Verdict.EXPIRED):
        await report(service, announcer, request)
    elif outcome.verdict is Verdict.RECORDED:
        await announcer.progress(request)


async def tell_clicker(respond: AsyncRespond, message: blocks.Message) -> None:
    await respond(**message.payload(), response_type="ephemeral", replace_original=False)
