"""The wiring, on one screen: Settings → store, OKX clients, policy, service, Bolt app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

import handlers
from bot import credentials
from bot.approvals import Rules
from bot.config import ConfigError, Settings
from bot.credentials import Account, CredentialsError
from bot.inflight import Inflight
from bot.policy import GroupLookupError, Policy
from bot.service import AutoRepay
from bot.store import Store
from handlers.announce import Announcer
from handlers.background import expire_forever, recover
from handlers.shape import problem
from okx import OkxClient

log = logging.getLogger("bot")
EXPIRY_SWEEP_SECONDS = 15.0


@dataclass
class Runtime:
    settings: Settings
    app: AsyncApp
    service: AutoRepay
    announcer: Announcer
    clients: dict[Account, OkxClient]
    inflight: Inflight
    background: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False

    async def start(self, sweep_every: float | None = EXPIRY_SWEEP_SECONDS) -> None:
        # One session for every Web API call: no new connection per message.
        self.app.client.session = aiohttp.ClientSession()
        self.background.append(asyncio.create_task(self._recover()))
        if sweep_every:
            self.background.append(asyncio.create_task(
                expire_forever(self.service, self.announcer, sweep_every)))
        self.ready = True
        log.info("ready mode=%s", "socket" if self.settings.socket_mode else "http")

    async def _recover(self) -> None:
        async with self.inflight.track():
            await recover(self.service, self.announcer)

    async def stop(self, drain_seconds: float = 30.0) -> None:
        self.ready = False
        if not await self.inflight.drain(drain_seconds):
            log.warning("shutdown with %d requests still in flight", self.inflight.count)
        for task in self.background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self.clients.values():
            await client.aclose()
        if self.app.client.session is not None:
            await self.app.client.session.close()
        self.service.store.close()


def okx_clients(settings: Settings, environ: Mapping[str, str],
                **okx_options: Any) -> tuple[dict[Account, OkxClient], dict[Account, str]]:
    clients: dict[Account, OkxClient] = {}
    missing: dict[Account, str] = {}
    for account in Account:
        try:
            creds = credentials.load(account, environ)
        except CredentialsError as exc:
            missing[account] = str(exc)
            continue
        clients[account] = OkxClient(creds, demo=account.is_demo,
                                     base_url=settings.okx_base_url, **okx_options)
    if not clients:
        raise ConfigError(list(missing.values()))
    for account, reason in missing.items():
        log.warning("%s account unavailable: %s", account, reason)
    return clients, missing


def slack_client(settings: Settings) -> AsyncWebClient:
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    client.retry_handlers.extend([AsyncRateLimitErrorRetryHandler(max_retry_count=2),
                                  AsyncServerErrorRetryHandler(max_retry_count=2)])
    return client


def open_store(settings: Settings) -> Store:
    try:
        return Store(settings.db_path)
    except sqlite3.Error as exc:
        raise ConfigError([f"AUTOREPAY_DB={str(settings.db_path)!r} cannot be used: {exc}"]
                          ) from None


def build(settings: Settings, environ: Mapping[str, str], *,
          clock: Callable[[], float] = time.time, **okx_options: Any) -> Runtime:
    store = open_store(settings)
    clients, missing = okx_clients(settings, environ, **okx_options)
    client = slack_client(settings)

    async def group_members(group: str) -> list[str]:
        try:
            response = await client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:
            raise GroupLookupError(str(exc.response.get("error"))) from None
        users: list[object] = response.get("users") or []
        return [str(user) for user in users]

    policy = Policy(requesters=settings.requesters, approvers=settings.approvers,
                    allowed_channels=settings.allowed_channels, group_members=group_members)
    service = AutoRepay(
        store=store, policy=policy, clients=clients, missing=missing,
        rules=Rules(settings.approvals_required, settings.allow_self_approval),
        ttl=settings.approval_ttl, approval_channel=settings.approval_channel, clock=clock)
    app = AsyncApp(client=client, signing_secret=settings.slack_signing_secret or None,
                   request_verification_enabled=not settings.socket_mode)
    announcer = Announcer(client)
    inflight = Inflight()
    handlers.register(app, service, announcer, inflight)

    @app.error
    async def unexpected(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error type=%s", body.get("type") or body.get("command"),
                  exc_info=error)

    return Runtime(settings, app, service, announcer, clients, inflight)


def web_app(runtime: Runtime, sweep_every: float | None = EXPIRY_SWEEP_SECONDS
            ) -> web.Application:
    """HTTP mode: POST /slack/events (signed by Slack) and GET /healthz."""

    verifier = SignatureVerifier(runtime.settings.slack_signing_secret)

    async def events(request: web.Request) -> web.Response:
        raw = await request.text()
        try:  # Bolt's request parser trips over some malformed payloads (TypeError etc.)
            bolt_request = AsyncBoltRequest(body=raw, query=request.query_string,
                                            headers=dict(request.headers))
            reason = problem(bolt_request.body)
        except (TypeError, KeyError, AttributeError, ValueError, IndexError) as exc:
            reason = f"unparseable: {type(exc).__name__}"
        if reason is not None:  # never reaches Bolt; unsigned stays 401 all the same
            if not verifier.is_valid_request(raw, request.headers):
                return web.Response(status=401)
            log.info("malformed payload refused reason=%s", reason)
            return web.Response(status=400, text="malformed payload")
        async with runtime.inflight.acking():
            bolt_response = await runtime.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        status = 200 if runtime.ready else 503
        return web.json_response({"ready": runtime.ready}, status=status)

    async def on_startup(_: web.Application) -> None:
        await runtime.start(sweep_every)

    async def on_cleanup(_: web.Application) -> None:
        await runtime.stop()

    application = web.Application()
    application.router.add_post("/slack/events", events)
    application.router.add_get("/healthz", healthz)
    application.on_startup.append(on_startup)
    application.on_cleanup.append(on_cleanup)
    return application


class GatedSocketModeHandler(AsyncSocketModeHandler):
    """Acks malformed envelopes without handing them to Bolt (see handlers.shape)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.app, runtime.settings.slack_app_token)
        self.inflight = runtime.inflight

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        reason = problem(req.payload)
        if reason is None:
            async with self.inflight.acking():
                await super().handle(client, req)  # type: ignore[arg-type]
            return
        log.info("malformed envelope refused reason=%s", reason)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


async def socket_mode(runtime: Runtime, stop: asyncio.Event,
                      sweep_every: float | None = EXPIRY_SWEEP_SECONDS) -> None:
    """Socket Mode: connect out to Slack, serve until `stop` is set, then drain."""
    handler = GatedSocketModeHandler(runtime)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await runtime.start(sweep_every)
    await stop.wait()
    log.info("shutting down")
    await handler.close_async()  # type: ignore[no-untyped-call]
    await runtime.stop()
