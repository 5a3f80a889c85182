"""Putting a request's state into Slack: the approval message, its thread, the requester.

Each method is one job's work (bot.jobs). It renders the request as stored when it
runs, and lets every failure out: the worker retries it. What Slack will never accept
becomes `Permanent`, so the job ends with its fallback instead (handlers.work).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.accounts import Account
from bot.approvals import ChangeRequest, Status
from bot.readings import Drift
from bot.worker import Permanent
from handlers import blocks

log = logging.getLogger("handlers.announce")

# Slack errors that no retry can mend: the bot can't post there (SPEC §7).
PERMANENT = frozenset({"channel_not_found", "not_in_channel", "is_archived",
                       "message_not_found", "cant_update_message", "edit_window_closed",
                       "user_not_found", "cannot_dm_bot", "user_disabled"})
# The bot may not read the approvals channel: it can only post again.
CANT_LOOK = frozenset({"missing_scope", "not_allowed_token_type", "no_permission",
                       "not_in_channel", "channel_not_found"})
METADATA_TYPE = "autorepay_approval"  # marks the bot's approval messages
DRIFT_TYPE = "autorepay_drift"  # marks its drift alerts
CLOCK_SKEW_SECONDS = 300  # look back this much before the request, for a host's clock


class Announcer:
    def __init__(self, client: AsyncWebClient,
                 approvers: Callable[[Account], str] = lambda account: "") -> None:
        self._client = client
        self._approvers = approvers  # the account's approvers as Slack mentions

    async def post_approval(self, request: ChangeRequest) -> str:
        """Post the approval message; returns its ts."""
        message = blocks.approval_request(request, not request.desired,
                                          self._approvers(request.account))
        response = await slack(self._client.chat_postMessage(
            channel=request.approval_channel, **message.payload(),
            metadata={"event_type": METADATA_TYPE,
                      "event_payload": {"request_id": request.id}}))
        return str(response["ts"])

    async def find_approval(self, request: ChangeRequest) -> str | None:
        """The ts of an approval message an interrupted attempt may have posted, or None.

        Needs the history scopes; without them None, and the post is made again: a second
        message is then possible, and harmless (see README). Other errors fail the job.
        """
        return await self._find(request.approval_channel, request.created_at, METADATA_TYPE,
                                "request_id", request.id)

    async def post_drift(self, channel: str, drift: Drift) -> str:
        """Post a drift's alert; returns its ts."""
        response = await slack(self._client.chat_postMessage(
            channel=channel, **blocks.drift_alert(drift).payload(),
            metadata={"event_type": DRIFT_TYPE, "event_payload": {"drift_id": drift.id}}))
        return str(response["ts"])

    async def find_drift(self, channel: str, drift: Drift) -> str | None:
        """The ts of a drift alert an interrupted attempt may have posted, or None (as
        `find_approval`)."""
        return await self._find(channel, drift.at, DRIFT_TYPE, "drift_id", drift.id)

    async def _find(self, channel: str, since: float, event_type: str, key: str,
                    value: object) -> str | None:
        try:
            response = await self._client.conversations_history(
                channel=channel, oldest=f"{since - CLOCK_SKEW_SECONDS:.6f}",
                include_all_metadata=True, limit=200)
        except SlackApiError as exc:
            if error(exc) not in CANT_LOOK:
                raise  # Slack trouble: look again on the next try, post nothing yet
            log.warning("could not look for an earlier message %s=%s error=%s (grant the "
                        "channels:history and groups:history scopes); posting it again",
                        key, value, error(exc))
            return None
        for message in response.get("messages") or []:
            metadata: dict[str, Any] = message.get("metadata") or {}
            payload: dict[str, Any] = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and \
                    str(payload.get(key)) == str(value):
                return str(message["ts"])
        return None

    async def update(self, request: ChangeRequest) -> None:
        """The approval message as the request is now: approvals so far, "applying…",
        or the final status without buttons."""
        if not request.approval_ts:
            return
        if request.status is Status.PENDING:
            message = blocks.approval_request(request, not request.desired,
                                              self._approvers(request.account))
        else:
            message = blocks.approval_closed(request)
        await slack(self._client.chat_update(channel=request.approval_channel,
                                             ts=request.approval_ts, **message.payload()))

    async def thread_reply(self, request: ChangeRequest, *, resumed: bool) -> None:
        if not request.approval_ts:
            return
        await slack(self._client.chat_postMessage(
            channel=request.approval_channel, thread_ts=request.approval_ts,
            **blocks.thread_result(request, resumed=resumed).payload()))

    async def tell_requester(self, request: ChangeRequest, message: blocks.Message) -> None:
        """A DM (the app's Messages tab): unlike an ephemeral note it stays, so the
        requester still finds the outcome after reloading Slack or on another device."""
        await slack(self._client.chat_postMessage(channel=request.requester,
                                                  **message.payload()))


async def slack(call: Any) -> Any:
    """Await a Web API call; a permanent refusal becomes `Permanent`."""
    try:
        return await call
    except SlackApiError as exc:
        if error(exc) in PERMANENT:
            raise Permanent(error(exc)) from None
        raise


def error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "unknown_error"))
