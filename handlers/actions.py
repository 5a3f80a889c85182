"""Approve / Deny clicks: record the decision (and the jobs it causes, in one
transaction), then ack. Everything after that is the worker's (bot.worker). Each click
is counted once (bot.metrics) by its verdict."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.approvals import Outcome
from bot.database_watch import unreachable
from bot.inflight import Inflight
from bot.metrics import Metrics
from bot.policy import Refusal
from bot.service import AutoRepay
from handlers import blocks

log = logging.getLogger("handlers.actions")


# A click is decided (and its jobs stored) before Slack gets its ack, so a crash right
# after the ack can't lose it; past this budget the ack goes out first (Slack wants it
# within 3 s) and the decision completes after it.
ACK_BUDGET_SECONDS = 2.0


def register(app: AsyncApp, service: AutoRepay, inflight: Inflight, metrics: Metrics) -> None:
    async def approve(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                      respond: AsyncRespond) -> None:
        async with inflight.track(after_acks=False):
            await click(True, ack, body, action, respond, service, metrics)

    async def deny(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                   respond: AsyncRespond) -> None:
        async with inflight.track(after_acks=False):
            await click(False, ack, body, action, respond, service, metrics)

    app.action(blocks.APPROVE)(approve)
    app.action(blocks.DENY)(deny)


async def click(approve: bool, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                respond: AsyncRespond, service: AutoRepay, metrics: Metrics) -> None:
    user = str((body.get("user") or {}).get("id", ""))
    decision = asyncio.ensure_future(
        service.click(user, str(action.get("value", "")), approve))
    await asyncio.wait({decision}, timeout=ACK_BUDGET_SECONDS)
    await ack()
    try:
        result = await decision
    except Exception as exc:
        metrics.decision("database_down" if unreachable(exc) else "error")
        if not unreachable(exc):
            raise
        log.warning("click not recorded: the database can't be reached (%s) user=%s",
                    type(exc).__name__, user)
        await tell_clicker(respond, blocks.DATABASE_DOWN)
        return
    metrics.decision(verdict(result))
    if isinstance(result, Refusal):
        await tell_clicker(respond, blocks.refused(result))
        return
    feedback = blocks.click_feedback(result, service.rules.approvals_required)
    if feedback is not None:
        await tell_clicker(respond, feedback)


def verdict(result: Outcome | Refusal) -> str:
    """The verdict label: the state machine's (approved, denied, recorded, …), or
    "refused" when the clicker may not decide."""
    return "refused" if isinstance(result, Refusal) else result.verdict.value


async def tell_clicker(respond: AsyncRespond, message: blocks.Message) -> None:
    await respond(**message.payload(), response_type="ephemeral", replace_original=False)
