"""Socket Mode: the WebSocket out to Slack, kept up with capped exponential backoff.

slack_sdk's aiohttp client retries a failed connect every ping interval forever, with a
traceback each time, and reuses a WebSocket URL that may have expired; while it does,
nothing else can stop it. Here only *how it connects* changes: a fresh URL per attempt,
one log line per failed attempt, backoff from 1 s to 30 s, and the caller can cancel it
at any moment. Receiving, acking and pings stay slack_sdk's.
"""

from __future__ import annotations

import asyncio
import logging
import random

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.inflight import Inflight
from handlers.shape import problem

log = logging.getLogger("bot.slack")
CONNECT_TIMEOUT = 10.0
FIRST_DELAY, MAX_DELAY = 1.0, 30.0
# What a failed connection attempt can raise: Slack's answer, or the network's.
CONNECT_ERRORS = (SlackApiError, aiohttp.ClientError, OSError, TimeoutError)


def backoff(attempt: int, rng: random.Random = random.Random()) -> float:  # noqa: B008
    """Seconds before attempt `attempt + 1`: doubling from 1 s, capped at 30 s, jittered."""
    ceiling = min(MAX_DELAY, FIRST_DELAY * 2.0 ** (attempt - 1))
    return ceiling * rng.uniform(0.5, 1.0)


def describe(exc: BaseException) -> str:
    """A few words for the log: Slack's error code, or the kind of network failure."""
    if isinstance(exc, SlackApiError):
        return f"Slack said {exc.response.get('error', 'error')}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class PatientSocketModeClient(SocketModeClient):
    """slack_sdk's client with our way of (re)connecting."""

    async def connect(self) -> None:
        attempt = 0
        while not self.closed:
            attempt += 1
            try:
                await self._open_session()
            except CONNECT_ERRORS as exc:
                delay = backoff(attempt)
                log.warning("Slack Socket Mode connection attempt %d failed (%s); next "
                            "attempt in %.1fs", attempt, describe(exc), delay)
                await asyncio.sleep(delay)
                continue
            log.info("connected to Slack (Socket Mode)%s",
                     f" after {attempt} attempts" if attempt > 1 else "")
            return

    @property
    def linked(self) -> bool:
        """Connected now (for /healthz): a session is open and not known to be stale."""
        session = self.current_session
        return not self.closed and not self.stale and session is not None \
            and not session.closed

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        async with self.connect_operation_lock:
            if force or not await self.is_connected():
                await self.connect()

    async def _open_session(self) -> None:
        self.auto_reconnect_enabled = False
        old = self.current_session
        if old is not None and not old.closed:
            await old.close()
        if self.aiohttp_client_session.closed:
            self.aiohttp_client_session = aiohttp.ClientSession()
        url, self.wss_uri = self.wss_uri or await self._new_url(), None
        self.current_session = await asyncio.wait_for(
            self.aiohttp_client_session.ws_connect(
                url, autoping=False, heartbeat=self.ping_interval, proxy=self.proxy),
            CONNECT_TIMEOUT)
        self.auto_reconnect_enabled = self.default_auto_reconnect_enabled
        self.stale = False
        for task in (self.current_session_monitor, self.message_receiver):
            if task is not None:
                task.cancel()
        self.current_session_monitor = asyncio.ensure_future(self.monitor_current_session())
        self.message_receiver = asyncio.ensure_future(self.receive_messages())

    async def _new_url(self) -> str:
        response = await asyncio.wait_for(
            self.web_client.apps_connections_open(app_token=self.app_token), CONNECT_TIMEOUT)
        return str(response["url"])


class GatedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's handler on the patient client; malformed envelopes are acked, not handled
    (see handlers.shape)."""

    def __init__(self, app: AsyncApp, app_token: str, inflight: Inflight,
                 url: str | None = None) -> None:
        # Not super().__init__: that would start a second client we'd have to close.
        self.app = app
        self.app_token = app_token
        self.inflight = inflight
        self.patient = PatientSocketModeClient(app_token=app_token, logger=app.logger,
                                               web_client=app.client, ping_interval=10)
        self.client = self.patient
        self.client.wss_uri = url  # from the start-up check: no second call needed
        self.client.socket_mode_request_listeners.append(self.handle)

    def linked(self) -> bool:
        """The WebSocket to Slack is up (/healthz in Socket Mode)."""
        return self.patient.linked

    async def handle(self, client: AsyncBaseSocketModeClient,
                     req: SocketModeRequest) -> None:
        reason = problem(req.payload)
        if reason is None:
            async with self.inflight.acking():
                await super().handle(client, req)  # type: ignore[arg-type]
            return
        log.info("malformed envelope refused reason=%s", reason)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
