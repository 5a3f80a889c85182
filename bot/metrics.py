"""Prometheus metrics (SPEC §9): what the operator's monitoring scrapes at /metrics.

Each `Metrics` has a registry of its own, never prometheus_client's global one: a test
process builds many runtimes, and each must count only its own work.

Label values are kept to small, known sets, so a series can't be made per user or per
request: accounts are the configured names (anything else is "other"); Slack methods,
Slack errors and OKX codes are short tokens, at most MAX_TOKENS different ones per
label ("other" past that, or for anything that isn't a plain token).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any

import prometheus_client
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy.exc import SQLAlchemyError

from bot.approvals import Status, Verdict
from bot.store import Store
from bot.store.schema import jobs, requests
from okx.client import CONFIG_PATH, SET_AUTO_REPAY_PATH

# A `…_created` timestamp beside every counter doubles the output and no alert uses it.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

log = logging.getLogger("bot.metrics")
OTHER = "other"
REFRESH_SECONDS = 5.0  # a scrape doesn't wait longer for the database than this
MAX_TOKENS = 50  # distinct values per free-form label (Slack errors, OKX codes)
TOKEN = re.compile(r"[A-Za-z0-9_.\-/]{1,64}")
CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# The outcomes each /autorepay action can have (handlers.commands); made at 0 at start.
COMMAND_OUTCOMES: dict[str, tuple[str, ...]] = {
    **{action: ("requested", "already_open", "no_change", "not_applicable", "unavailable",
                "refused", "error", "database_down") for action in ("on", "off")},
    "status": ("shown", "unavailable", "refused", "error", "database_down"),
    **{action: ("shown", "refused", "error", "database_down")
       for action in ("pending", "history")},
    "cancel": ("cancelled", "no_change", "refused", "error", "database_down"),
    "help": ("shown",),
    "invalid": ("invalid",),
}
VERDICTS = (*(verdict.value for verdict in Verdict), "refused", "unknown_request",
            "database_down", "error")
CHANGE_RESULTS = (Status.DONE.value, Status.FAILED.value)
OKX_ENDPOINTS = (CONFIG_PATH, SET_AUTO_REPAY_PATH)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Tokens:
    """One free-form label's values: short plain tokens, at most `limit` of them."""

    def __init__(self, limit: int = MAX_TOKENS) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: str) -> str:
        if not TOKEN.fullmatch(value):
            return OTHER
        if value not in self._seen and len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


def snake(name: str) -> str:
    """An exception's type name as a label value: ClientConnectorError →
    client_connector_error."""
    return CAMEL.sub("_", name).lower()


class Metrics:
    """The series SPEC §9 names; the methods are the counting points."""

    def __init__(self, accounts: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.accounts = tuple(accounts)
        self._slack_methods, self._slack_errors = Tokens(), Tokens()
        self._okx_endpoints, self._okx_codes = Tokens(), Tokens()
        self._make_series()
        self._at_zero()

    def _make_series(self) -> None:
        r = self.registry
        self.commands = Counter("autorepay_commands_total", "/autorepay commands by action "
                                "and outcome", ["action", "outcome"], registry=r)
        self.decisions = Counter("autorepay_decisions_total", "Approve/Deny clicks by "
                                 "verdict", ["verdict"], registry=r)
        self.changes = Counter("autorepay_changes_total", "OKX changes applied, by account "
                               "and result (done, failed)", ["account", "result"], registry=r)
        self.okx_requests = Counter("autorepay_okx_requests_total", "HTTP requests to OKX by "
                                    "endpoint and OKX code (0: success)",
                                    ["endpoint", "code"], registry=r)
        self.okx_seconds = Histogram("autorepay_okx_request_seconds", "Duration of one HTTP "
                                     "request to OKX", ["endpoint"], registry=r)
        self.slack_errors = Counter("autorepay_slack_errors_total", "Slack Web API calls "
                                    "that failed, by method and error", ["method", "error"],
                                    registry=r)
        self.pending = Gauge("autorepay_pending_requests", "Requests waiting for approval, "
                             "by account", ["account"], registry=r)
        self.jobs_waiting = Gauge("autorepay_jobs_waiting", "Jobs due and not done (running "
                                  "ones included)", registry=r)
        self.drifts = Counter("autorepay_drift_total", "Auto repay changes made outside the "
                              "bot, by account", ["account"], registry=r)

    def _at_zero(self) -> None:
        """Every series whose label values are known exists from the start, at 0, so
        `increase()` and absent-series alerts work from the first scrape."""
        for action, outcomes in COMMAND_OUTCOMES.items():
            for outcome in outcomes:
                self.commands.labels(action, outcome)
        for verdict in VERDICTS:
            self.decisions.labels(verdict)
        for account in self.accounts:
            self.pending.labels(account)
            self.drifts.labels(account)
            for result in CHANGE_RESULTS:
                self.changes.labels(account, result)
        for endpoint in OKX_ENDPOINTS:
            self.okx_requests.labels(self._okx_endpoints(endpoint), "0")
            self.okx_seconds.labels(endpoint)

    # --- counting points ----------------------------------------------------------------
    def command(self, action: str, outcome: str) -> None:
        known = outcome in COMMAND_OUTCOMES.get(action, ())
        self.commands.labels(action if known else OTHER, outcome if known else OTHER).inc()

    def decision(self, verdict: str) -> None:
        self.decisions.labels(verdict if verdict in VERDICTS else OTHER).inc()

    def change(self, account: str, result: str) -> None:
        self.changes.labels(self._account(account),
                            result if result in CHANGE_RESULTS else OTHER).inc()

    def okx_request(self, endpoint: str, code: str, seconds: float) -> None:
        endpoint = self._okx_endpoints(endpoint)
        self.okx_requests.labels(endpoint, self._okx_codes(code)).inc()
        self.okx_seconds.labels(endpoint).observe(seconds)

    def slack_error(self, method: str, error: str) -> None:
        self.slack_errors.labels(self._slack_methods(method), self._slack_errors(error)).inc()

    def drift(self, account: str) -> None:
        self.drifts.labels(self._account(account)).inc()

    def _account(self, name: str) -> str:
        return name if name in self.accounts else OTHER

    # --- gauges and the scrape ----------------------------------------------------------
    async def refresh(self, store: Store, now: float) -> None:
        """The gauges, read from the database: they hold for every replica at once."""
        async with store.reading() as db:
            rows = (await db.execute(
                sa.select(requests.c.account, sa.func.count())
                .where(requests.c.status == Status.PENDING.value, requests.c.expires_at > now)
                .group_by(requests.c.account))).all()
            waiting = (await db.execute(
                sa.select(sa.func.count()).select_from(jobs)
                .where(jobs.c.done_at.is_(None), jobs.c.due_at <= now))).scalar_one()
        counts = dict.fromkeys((*self.accounts, OTHER), 0)  # 0: none waiting
        for account, count in rows:
            counts[self._account(str(account))] += int(count)
        for account, count in counts.items():
            self.pending.labels(account).set(count)
        self.jobs_waiting.set(int(waiting))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def scrape(self, store: Store, now: float) -> bytes:
        """What /metrics answers: the gauges refreshed, or as they were when the database
        can't be read now (the counters are this process's and always there)."""
        try:
            await asyncio.wait_for(self.refresh(store, now), REFRESH_SECONDS)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.debug("metrics gauges not refreshed (%s)", type(exc).__name__)
        return self.render()


def count_slack_errors(client: AsyncWebClient, metrics: Metrics) -> None:
    """Count every Web API call of `client` that fails: Slack's `error`, or the kind of
    network failure. Every method of the client (and Socket Mode's connection opening)
    goes through its `api_call`, so that one is wrapped; the failure is raised as before."""
    call = client.api_call

    async def api_call(api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            return await call(api_method, **kwargs)
        except SlackApiError as exc:
            metrics.slack_error(api_method, str(exc.response.get("error") or "error"))
            raise
        except Exception as exc:  # timeouts, refused connections, …: counted, not handled
            metrics.slack_error(api_method, snake(type(exc).__name__))
            raise

    client.api_call = api_call  # type: ignore[method-assign]
