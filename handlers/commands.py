"""/autorepay: parse → act (bot.service) → render (handlers.blocks). ack() comes first."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.approvals import ChangeRequest, Status
from bot.inflight import Inflight
from bot.policy import Refusal
from bot.service import (
    AccountState,
    AutoRepay,
    NoChangeNeeded,
    NotApplicable,
    Requested,
    Unavailable,
)
from handlers import blocks
from handlers.announce import Announcer, error, report
from handlers.parsing import Action, Command, UsageError, parse

log = logging.getLogger("handlers.commands")


def register(app: AsyncApp, service: AutoRepay, announcer: Announcer,
             inflight: Inflight) -> None:
    async def autorepay(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        try:
            command = parse(str(body.get("text") or ""))
        except UsageError as exc:
            await ack(**blocks.usage(str(exc)).payload(), response_type="ephemeral")
            return
        if command.action is Action.HELP:
            await ack(**blocks.usage_payload(), response_type="ephemeral")
            return
        await ack(**blocks.working_payload(command.account), response_type="ephemeral")
        user, channel = str(body.get("user_id", "")), str(body.get("channel_id", ""))
        async with inflight.track():
            reply = await run(command, user, channel, service, announcer)
            await respond(**reply.payload(), response_type="ephemeral", replace_original=False)

    app.command("/autorepay")(autorepay)


async def run(command: Command, user: str, channel: str, service: AutoRepay,
              announcer: Announcer) -> blocks.Message:
    if command.action is Action.STATUS:
        state = await service.status(user, channel, command.account)
        return render(state)
    result = await service.request_change(user, channel, command.account, command.desired)
    if not isinstance(result, Requested):
        return render(result)
    return await put_up_for_approval(result.request, result.config.auto_repay, service,
                                     announcer)


async def put_up_for_approval(request: ChangeRequest, current: bool | None,
                              service: AutoRepay, announcer: Announcer) -> blocks.Message:
    """Post the approval message for a stored request; the note for the requester."""
    try:
        ts = await announcer.post_approval(request, current)
    except SlackApiError as exc:
        await service.abandon(request, f"slack:{error(exc)}")
        return blocks.approval_not_posted(request, error(exc))
    request = await service.posted(request, request.approval_channel, ts)
    # Expired while the message was being posted. (A click may also have come in by now:
    # approved or denied, that click announces its own outcome.)
    if request.status is Status.EXPIRED:
        await report(service, announcer, request)
    return blocks.request_note(request)


def render(result: AccountState | NoChangeNeeded | NotApplicable | Unavailable | Refusal
           ) -> blocks.Message:
    match result:
        case AccountState():
            return blocks.status(result)
        case NoChangeNeeded() | NotApplicable():
            return blocks.no_change(result)
        case Unavailable():
            return blocks.unavailable(result)
        case Refusal():
            return blocks.refused(result)
