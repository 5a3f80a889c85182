"""The wiring, on one screen: Settings → store, OKX clients, policy, service, Bolt app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from sqlalchemy.exc import SQLAlchemyError

import handlers
from bot import credentials, http_server
from bot.accounts import Account
from bot.approvals import Rules
from bot.config import ConfigError, Settings
from bot.connections import ConnectionGuard
from bot.credentials import CredentialsError
from bot.database import Database
from bot.database_watch import DatabaseWatch
from bot.dblock import DatabaseInUse, DatabaseLock
from bot.drift_watch import DriftWatch
from bot.http_server import BODY_SECONDS
from bot.inflight import Inflight
from bot.metrics import Metrics, count_slack_errors
from bot.policy import GroupLookupError, Policy
from bot.service import AutoRepay
from bot.signature import SlackSignature
from bot.store import Store
from bot.worker import Worker
from handlers.announce import Announcer
from handlers.background import expire_forever
from handlers.blocks import mentions
from handlers.work import JobRunner
from okx import OkxClient

log = logging.getLogger("bot")
EXPIRY_SWEEP_SECONDS = 15.0
SLACK_CALL_SECONDS = 10  # a hung Web API call fails after this, and its job is retried


@dataclass
class Runtime:
    settings: Settings
    app: AsyncApp
    service: AutoRepay
    worker: Worker
    clients: dict[str, OkxClient]  # by account name
    inflight: Inflight
    missing: dict[str, str] = field(default_factory=dict)
    lock: DatabaseLock | None = None
    watch: DatabaseWatch | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    drift: DriftWatch | None = None  # SPEC §9; made at start unless switched off
    retired: list[OkxClient] = field(default_factory=list)  # accounts OKX refused at start
    ready: bool = False
    linked: Callable[[], bool] = lambda: True  # Socket Mode: its WebSocket is up
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: Metrics = field(default_factory=Metrics)  # SPEC §9: /metrics

    def retire(self, account: str, reason: str) -> None:
        """Make an account unavailable (its key was refused); the others keep working."""
        client = self.clients.pop(account, None)
        if client is not None:
            self.retired.append(client)
        self.missing[account] = reason

    @property
    def healthy(self) -> bool:
        """/healthz: started, not draining, the database answers and, in Socket Mode,
        the connection to Slack is up (without it no command or click arrives)."""
        return self.ready and (self.watch is None or self.watch.ok) and self.linked()

    async def scrape(self) -> bytes:
        """/metrics: the counters, and the gauges read from the database now."""
        return await self.metrics.scrape(self.service.store, self.service.clock())

    async def dispatch(self, request: AsyncBoltRequest) -> web.StreamResponse:
        async with self.inflight.acking():
            response = await self.app.async_dispatch(request)
        return await to_aiohttp_response(response)

    async def start(self, sweep_every: float | None = EXPIRY_SWEEP_SECONDS) -> None:
        # One session for every Web API call: no new connection per message. slack_sdk
        # applies its own timeout only to sessions it makes, so this one carries it.
        self.app.client.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.app.client.timeout))
        if self.lock is not None:  # this process alone uses the database: whatever a
            await self.service.store.jobs.release_all()  # dead one had leased is due now
        self.worker.start()
        if self.watch is not None:
            self.background.append(asyncio.create_task(self.watch.run(self.stopping)))
        if self.settings.drift_check_seconds:  # (its first round: one interval from now)
            self.drift = DriftWatch(self.service, float(self.settings.drift_check_seconds),
                                    self.worker.owner, clock=self.service.clock)
            self.background.append(asyncio.create_task(self.drift.run(self.stopping)))
        if sweep_every:
            self.background.append(asyncio.create_task(expire_forever(
                self.service, sweep_every, self.stopping, self.worker.owner)))
        self.ready = True
        log.info("ready mode=%s", "socket" if self.settings.socket_mode else "http")

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Take no new work, let work in flight finish (bounded), then close everything."""
        self.ready = False
        started = time.monotonic()
        if self.inflight.count or self.worker.busy:
            log.info("draining: %d requests and %d jobs in flight", self.inflight.count,
                     self.worker.busy)
        if not await self.inflight.drain(drain_seconds):
            log.warning("shutdown with %d requests still in flight", self.inflight.count)
        self.stopping.set()  # the sweep ends between two sweeps
        if self.background:
            _, stuck = await asyncio.wait(self.background, timeout=5.0)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*self.background, return_exceptions=True)
        # Jobs still running after the drain are put back: the next start (or another
        # replica) runs them; so are the timers' turns.
        await self.worker.stop(max(0.0, drain_seconds - (time.monotonic() - started)))
        try:
            await self.service.store.give_up_turns(self.worker.owner)
        except Exception as exc:  # (the database may be what is failing)
            log.warning("could not hand on the timers' turns (%s); they pass on when they "
                        "run out", type(exc).__name__)
        for client in [*self.clients.values(), *self.retired]:
            await client.aclose()
        if self.app.client.session is not None:
            await self.app.client.session.close()
        await self.close_store()

    async def close_store(self) -> None:
        await self.service.store.aclose()
        if self.lock is not None:
            self.lock.release()


def credential_problems(accounts: tuple[Account, ...],
                        environ: Mapping[str, str]) -> list[str]:
    """Why no account has credentials; empty when at least one has."""
    errors = []
    for account in accounts:
        try:
            credentials.load(account, environ)
        except CredentialsError as exc:
            errors.append(str(exc))
        else:
            return []
    return errors


def okx_clients(settings: Settings, environ: Mapping[str, str],
                **okx_options: Any) -> tuple[dict[str, OkxClient], dict[str, str]]:
    """A client per account with credentials (by name), and why the others have none.
    Accounts that share an OKX uid share its rate limits (okx.ratelimit)."""
    clients: dict[str, OkxClient] = {}
    missing: dict[str, str] = {}
    for account in settings.accounts:
        try:
            creds = credentials.load(account, environ)
        except CredentialsError as exc:
            missing[account.name] = str(exc)
            continue
        clients[account.name] = OkxClient(creds, demo=account.is_demo,
                                          base_url=settings.okx_base_url, **okx_options)
    if not clients:
        raise ConfigError(list(missing.values()))
    for name, reason in missing.items():
        log.warning("%s account unavailable: %s", name, reason)
    return clients, missing


def bolt_app(settings: Settings) -> AsyncApp:
    """The Bolt app and its Web API client. In HTTP mode Bolt checks signatures as well
    (after http_server has); in Socket Mode there is nothing to sign."""
    # Bolt makes the client from the token: handing it a client of our own as well makes
    # it warn on every start that the token (which it reads from the environment) is unused.
    app = AsyncApp(token=settings.slack_bot_token,
                   signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
                   request_verification_enabled=not settings.socket_mode)
    client = app.client
    client.base_url = settings.slack_api_url
    client.timeout = SLACK_CALL_SECONDS
    # Only "rate limited" is retried inside a call: Slack did nothing then. A dropped
    # connection or a 5xx may hide a message that was posted, so those failures go to
    # the job, whose retry looks for the message before posting it again.
    client.retry_handlers = [AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
    return app


def lock_database(database: Database) -> DatabaseLock | None:
    """One process per SQLite file (an OS file lock); none for PostgreSQL, which any
    number of replicas share."""
    if database.path is None:
        return None
    lock = DatabaseLock(database.path)
    try:
        lock.acquire()
    except DatabaseInUse as exc:
        raise ConfigError([f"{database} cannot be used: {exc} (one bot process per SQLite "
                           "file; several replicas need PostgreSQL: AUTOREPAY_DATABASE_URL)"]
                          ) from None
    except OSError as exc:
        raise ConfigError([f"{database} cannot be used: its lock file {str(lock.path)!r} "
                           f"can't be opened ({exc.strerror})"]) from None
    return lock


async def open_store(database: Database, clock: Callable[[], float] = time.time) -> Store:
    """The database, migrated and proven writable: a read-only file or a database that
    can't be reached fails here, not at the first command."""
    try:
        store = await Store.open(database)
    except (SQLAlchemyError, OSError) as exc:
        raise ConfigError([f"{database} cannot be used: {database.describe(exc)}"]
                          ) from None
    try:
        await store.audit("started", now=clock())
    except (SQLAlchemyError, OSError) as exc:
        await store.aclose()
        raise ConfigError([f"{database} cannot be written: {database.describe(exc)}"]
                          ) from None
    return store


async def build(settings: Settings, environ: Mapping[str, str], *,
          clock: Callable[[], float] = time.time, **okx_options: Any) -> Runtime:
    database = settings.database
    lock = lock_database(database)
    try:
        store = await open_store(database, clock)
    except ConfigError:
        if lock is not None:
            lock.release()
        raise
    metrics = Metrics(account.name for account in settings.accounts)
    clients, missing = okx_clients(settings, environ, observe=metrics.okx_request,
                                   **okx_options)
    app = bolt_app(settings)
    count_slack_errors(app.client, metrics)
    client = app.client

    async def group_members(group: str) -> list[str]:
        try:
            response = await client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:  # ratelimited (429) included, after the retries
            raise GroupLookupError(str(exc.response.get("error"))) from None
        except (aiohttp.ClientError, TimeoutError) as exc:  # Slack not reached at all
            raise GroupLookupError(f"{type(exc).__name__} {exc}".strip()) from None
        users: list[object] = response.get("users") or []
        return [str(user) for user in users]

    policy = Policy(requesters=settings.requesters, approvers=settings.approvers,
                    per_account={name: (access.requesters, access.approvers)
                                 for name, access in settings.per_account.items()},
                    allowed_channels=settings.allowed_channels, group_members=group_members)
    service = AutoRepay(
        store=store, policy=policy, accounts=settings.accounts, clients=clients,
        missing=missing,
        rules=Rules(settings.approvals_required, settings.allow_self_approval),
        ttl=settings.approval_ttl, approval_channel=settings.approval_channel, clock=clock)
    def approvers(account: Account) -> str:
        return mentions(settings.access(account).approvers) if settings.mention_approvers \
            else ""

    service.drift_alerts = settings.drift_check_seconds > 0
    worker = Worker(store.jobs, JobRunner(service, Announcer(client, approvers)), clock=clock,
                    lease=float(settings.lease_seconds))
    service.jobs_added = worker.wake
    service.claimant, service.run_claimed = worker.claimant, worker.run_claimed
    service.on_change = lambda request: metrics.change(request.account.name,
                                                       request.status.value)
    service.on_drift = lambda drift: metrics.drift(drift.account.name)
    inflight = Inflight()
    handlers.register(app, service, worker, inflight, require_reason=settings.require_reason,
                      metrics=metrics)

    @app.error
    async def unexpected(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error type=%s", body.get("type") or body.get("command"),
                  exc_info=error)

    watch = DatabaseWatch(store.ping, database.describe, on_return=worker.wake)
    return Runtime(settings, app, service, worker, clients, inflight, missing, lock, watch,
                   metrics=metrics)


def http_app(runtime: Runtime, guard: ConnectionGuard, *,
             body_seconds: float = BODY_SECONDS) -> web.Application:
    """HTTP mode's routes for this runtime (see bot.http_server)."""
    return http_server.web_app(
        signature=SlackSignature(runtime.settings.slack_signing_secret),
        accepting=lambda: runtime.ready, healthy=lambda: runtime.healthy,
        dispatch=runtime.dispatch, guard=guard,
        body_seconds=body_seconds, metrics=runtime.scrape)


