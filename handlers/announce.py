"""Putting a request's state into Slack: the approval message, its thread, the requester."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals import ChangeRequest, Status
from bot.service import AutoRepay
from handlers import blocks

log = logging.getLogger("handlers.announce")


class Announcer:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def post_approval(self, request: ChangeRequest, current: bool | None) -> str:
        """Post the approval message; returns its ts."""
        message = blocks.approval_request(request, current)
        response = await self._client.chat_postMessage(
            channel=request.approval_channel, **message.payload())
        return str(response["ts"])

    async def progress(self, request: ChangeRequest) -> None:
        """Show approvals so far (still pending) or that the OKX call is under way."""
        if request.status is Status.PENDING:
            message = blocks.approval_request(request, not request.desired)
        else:
            message = blocks.approval_closed(request)
        try:
            await self._update(request, message)
        except SlackApiError as exc:  # cosmetic: the outcome will be announced anyway
            log.warning("progress update failed id=%s error=%s", request.id, error(exc))

    async def closed(self, request: ChangeRequest, *, resumed: bool = False) -> bool:
        """Final state: update the approval message, reply in its thread, tell the requester.

        True when the thread reply (the record people read) was posted.
        """
        try:
            await self._update(request, blocks.approval_closed(request))
            if request.approval_ts:
                await self._client.chat_postMessage(
                    channel=request.approval_channel, thread_ts=request.approval_ts,
                    **blocks.thread_result(request, resumed=resumed).payload())
        except SlackApiError as exc:
            log.warning("announcing failed id=%s error=%s", request.id, error(exc))
            return False
        await self.tell_requester(request, blocks.requester_result(request))
        return True

    async def tell_requester(self, request: ChangeRequest, message: blocks.Message) -> None:
        """Ephemeral in the channel they asked from; a DM if the bot can't post there."""
        try:
            await self._client.chat_postEphemeral(
                channel=request.origin_channel, user=request.requester, **message.payload())
            return
        except SlackApiError as exc:
            log.info("ephemeral failed id=%s error=%s; sending a DM", request.id, error(exc))
        try:
            await self._client.chat_postMessage(channel=request.requester, **message.payload())
        except SlackApiError as exc:
            log.warning("could not tell requester id=%s error=%s", request.id, error(exc))

    async def _update(self, request: ChangeRequest, message: blocks.Message) -> None:
        if not request.approval_ts:
            return
        await self._client.chat_update(channel=request.approval_channel,
                                       ts=request.approval_ts, **message.payload())


async def report(service: AutoRepay, announcer: Announcer, request: ChangeRequest, *,
                 resumed: bool = False) -> None:
    """Announce a final state and remember that it was announced.

    The request is read again first: a click can be decided while the approval message
    is still being recorded, and the thread reply needs that message's ts.
    """
    request = await service.store.get(request.id) or request
    if await announcer.closed(request, resumed=resumed):
        await service.announced(request)


def error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "unknown_error"))
