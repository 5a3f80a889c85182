"""/autorepay: parse → act (bot.service) → render (handlers.blocks). ack() comes first.
Each command is counted once (bot.metrics) by its action and outcome."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.approvals import Status
from bot.database_watch import unreachable
from bot.inflight import Inflight
from bot.metrics import Metrics
from bot.policy import Refusal
from bot.service import (
    AccountState,
    AlreadyOpen,
    AutoRepay,
    Cancelled,
    Listing,
    NoChangeNeeded,
    NotApplicable,
    Overview,
    Requested,
    Unavailable,
)
from bot.worker import Worker
from handlers import blocks, listings
from handlers.parsing import Action, Command, UsageError, parse

log = logging.getLogger("handlers.commands")


# How long a command's reply waits for its approval message to be posted (retries
# included). Past that it says "not posted yet", and the job tells the requester later.
POST_WAIT_SECONDS = 5.0
# The outcome label (autorepay_commands_total) of what bot.service answered.
OUTCOMES: dict[type, str] = {
    Requested: "requested", AlreadyOpen: "already_open", NoChangeNeeded: "no_change",
    NotApplicable: "not_applicable", Unavailable: "unavailable", Refusal: "refused",
    AccountState: "shown", Overview: "shown", Listing: "shown",
}


def register(app: AsyncApp, service: AutoRepay, worker: Worker, inflight: Inflight,
             metrics: Metrics, *, require_reason: bool = False) -> None:
    accounts = service.accounts

    async def autorepay(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        try:
            command = parse(str(body.get("text") or ""), accounts,
                            require_reason=require_reason)
        except UsageError as exc:
            await ack(**blocks.usage(accounts, str(exc), reason_required=require_reason)
                      .payload(), response_type="ephemeral")
            metrics.command("invalid", "invalid")
            return
        if command.action is Action.HELP:
            await ack(**blocks.usage_payload(accounts, require_reason),
                      response_type="ephemeral")
            metrics.command(Action.HELP.value, "shown")
            return
        await ack(**working_payload(command), response_type="ephemeral")
        user, channel = str(body.get("user_id", "")), str(body.get("channel_id", ""))
        async with inflight.track():
            reply = await answer(command, user, channel, service, worker, metrics)
            await respond(**reply.payload(), response_type="ephemeral", replace_original=False)

    app.command("/autorepay")(autorepay)


async def answer(command: Command, user: str, channel: str, service: AutoRepay,
                 worker: Worker, metrics: Metrics) -> blocks.Message:
    """The command's reply, counted; a database that can't be reached is said so."""
    action = command.action.value
    try:
        reply, outcome = await run(command, user, channel, service, worker)
    except Exception as exc:
        if not unreachable(exc):
            metrics.command(action, "error")
            raise
        log.warning("command not done: the database can't be reached (%s) "
                    "user=%s action=%s", type(exc).__name__, user, command.action)
        reply, outcome = blocks.DATABASE_DOWN, "database_down"
    metrics.command(action, outcome)
    return reply


def working_payload(command: Command) -> dict[str, Any]:
    """The ack: what is being looked at (built once per kind)."""
    if command.action in (Action.ON, Action.OFF, Action.STATUS) and command.account:
        return blocks.working_payload(command.account)
    return blocks.looking_payload(command.action is Action.STATUS)


async def run(command: Command, user: str, channel: str, service: AutoRepay,
              worker: Worker) -> tuple[blocks.Message, str]:
    """(the reply, the outcome label)."""
    match command.action:
        case Action.STATUS if command.account is None:
            overview = await service.overview(user, channel)
            return (listings.overview(overview) if isinstance(overview, Overview)
                    else blocks.refused(overview)), outcome(overview)
        case Action.STATUS:
            assert command.account is not None
            state = await service.status(user, channel, command.account)
            return render(state), outcome(state)
        case Action.PENDING:
            found = await service.pending(user, channel)
            return (listings.pending(found, service.rules.approvals_required, service.clock())
                    if isinstance(found, Listing) else blocks.refused(found)), outcome(found)
        case Action.HISTORY:
            found = await service.history(user, channel, command.account, command.count)
            return (listings.history(found) if isinstance(found, Listing)
                    else blocks.refused(found)), outcome(found)
        case Action.CANCEL:
            withdrawn = await service.cancel(user, channel, command.request_id)
            return (listings.cancelled(withdrawn) if isinstance(withdrawn, Cancelled)
                    else blocks.refused(withdrawn)), outcome(withdrawn)
    assert command.account is not None
    result = await service.request_change(user, channel, command.account, command.desired,
                                          command.reason)
    if not isinstance(result, Requested):
        return render(result), outcome(result)
    return await posting_note(result, service, worker), outcome(result)


def outcome(result: object) -> str:
    if isinstance(result, Cancelled):
        return "cancelled" if result.done else "no_change"
    return OUTCOMES.get(type(result), "other")  # ("other" in the metrics too)


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
