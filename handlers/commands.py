"""/autorepay: parse → act (bot.service) → render (handlers.blocks). ack() comes first."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.approvals import Status
from bot.inflight import Inflight
from bot.policy import Refusal
from bot.service import (
    AccountState,
    AlreadyOpen,
    AutoRepay,
    NoChangeNeeded,
    NotApplicable,
    Requested,
    Unavailable,
)
from bot.worker import Worker
from handlers import blocks
from handlers.parsing import Action, Command, UsageError, parse

log = logging.getLogger("handlers.commands")


# How long a command's reply waits for its approval message to be posted (retries
# included). Past that it says "not posted yet", and the job tells the requester later.
POST_WAIT_SECONDS = 5.0


def register(app: AsyncApp, service: AutoRepay, worker: Worker, inflight: Inflight) -> None:
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
            reply = await run(command, user, channel, service, worker)
            await respond(**reply.payload(), response_type="ephemeral", replace_original=False)

    app.command("/autorepay")(autorepay)


async def run(command: Command, user: str, channel: str, service: AutoRepay,
              worker: Worker) -> blocks.Message:
    if command.action is Action.STATUS:
        state = await service.status(user, channel, command.account)
        return render(state)
    result = await service.request_change(user, channel, command.account, command.desired)
    if not isinstance(result, Requested):
        return render(result)
    return await posting_note(result, service, worker)


async def posting_note(result: Requested, service: AutoRepay, worker: Worker
                       ) -> blocks.Message:
    """Wait (bounded) until the approval message is posted, retries included, and say
    how it went. If it isn't up in time, its job will tell the requester when it is."""
    if not await worker.settled(result.post_job, POST_WAIT_SECONDS) and \
            await service.store.jobs.tell_requester_later(result.post_job):
        return blocks.not_posted_yet(result.request)
    request = await service.store.get(result.request.id) or result.request
    if request.approval_ts:
        return blocks.request_note(request)
    if request.status is Status.FAILED:
        return blocks.approval_not_posted(request, request.error_code.removeprefix("slack:"))
    return blocks.requester_result(request)  # expired or superseded before it was posted


def render(result: AccountState | AlreadyOpen | NoChangeNeeded | NotApplicable | Unavailable
           | Refusal) -> blocks.Message:
    match result:
        case AccountState():
            return blocks.status(result)
        case AlreadyOpen():
            return blocks.busy(result.request) if result.busy else \
                blocks.duplicate(result.request)
        case NoChangeNeeded() | NotApplicable():
            return blocks.no_change(result)
        case Unavailable():
            return blocks.unavailable(result)
        case Refusal():
            return blocks.refused(result)
