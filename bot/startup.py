"""Start-up checks against Slack and OKX: what can be proven before saying "ready".

- Slack: `auth.test` with the bot token and, in Socket Mode, `apps.connections.open`
  with the app token. A token Slack rejects is a start-up problem (exit 2); Slack not
  answering is retried with capped backoff, one line per attempt, until it answers or
  the bot is told to stop.
- OKX: each account's configuration is read once. A key OKX refuses is logged as an
  error and that account becomes unavailable; OKX not answering is a warning and the
  account is tried again when used. With no account left, the bot does not start.
  Each read is recorded as the account's reading (bot.readings), as the drift watch
  records its reads: the first ever is the baseline, and a change made while the bot
  was down is alerted now.
- Until a client has read its account once it doesn't know its uid, so the bot can't
  tell which accounts share one (and OKX's 5 reads / 2 s): the start-up reads go at
  most that many per 2 s altogether. Twenty accounts on one uid read at once would have
  OKX refuse fifteen (50011), and a client whose read then gave up would stay outside
  its uid's rate limiter, free to be refused again later, in the middle of an approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy.exc import SQLAlchemyError

from bot.accounts import Account
from bot.app import Runtime
from bot.socket_link import CONNECT_ERRORS, CONNECT_TIMEOUT, backoff, describe
from okx import OkxError, OkxRejectedError, RateLimiter

log = logging.getLogger("bot.startup")
OKX_CHECK_SECONDS = 8.0
UNKNOWN_UID_READS, UNKNOWN_UID_PERIOD = 5, 2.0  # OKX's limit on account/config per uid
# Slack errors that say "not now" rather than "not this token".
SLACK_TRANSIENT = frozenset({"ratelimited", "fatal_error", "internal_error",
                             "service_unavailable", "request_timeout"})


async def check_slack(runtime: Runtime) -> tuple[list[str], str | None]:
    """(problems, Socket Mode URL). Waits for Slack as long as it takes: cancel it to
    stop waiting."""
    client, settings = runtime.app.client, runtime.settings
    problems: list[str] = []
    _, rejected = await _ask("SLACK_BOT_TOKEN", client.auth_test)
    if rejected:
        problems.append(rejected)
    url = None
    if settings.socket_mode:
        answer, rejected = await _ask("SLACK_APP_TOKEN", lambda: client.apps_connections_open(
            app_token=settings.slack_app_token))
        if rejected:
            problems.append(rejected)
        url = str(answer["url"]) if answer is not None else None
    return problems, url


async def _ask(variable: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
               ) -> tuple[AsyncSlackResponse | None, str | None]:
    """Call Slack until it answers: (its answer, None), or (None, the problem line) if it
    rejects the token."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncio.wait_for(call(), CONNECT_TIMEOUT), None
        except SlackApiError as exc:
            error = str(exc.response.get("error", "error"))
            if exc.response.status_code < 500 and error not in SLACK_TRANSIENT:
                return None, f"{variable} was rejected by Slack ({error}): copy the token " \
                             "again from the app's settings at api.slack.com/apps"
            failure = describe(exc)
        except (*CONNECT_ERRORS, SlackClientError) as exc:  # any other way of not answering
            failure = describe(exc)
        delay = backoff(attempt)
        log.warning("could not reach Slack to check %s, attempt %d (%s); next attempt in "
                    "%.1fs", variable, attempt, failure, delay)
        await asyncio.sleep(delay)


async def check_accounts(runtime: Runtime, *, pace: RateLimiter | None = None
                         ) -> list[str]:
    """Read each account once; retire those OKX refuses. Problems only if none is left.
    `pace`: the limiter over all the reads (OKX's 5 / 2 s unless given)."""
    accounts = [a for a in runtime.settings.accounts if a.name in runtime.clients]
    unknown_uids = pace or RateLimiter(max_calls=UNKNOWN_UID_READS, period=UNKNOWN_UID_PERIOD)
    results = await asyncio.gather(*(_check_account(runtime, a, unknown_uids)
                                     for a in accounts))
    seen: dict[tuple[str, bool], Account] = {}
    for account, (refusal, uid) in zip(accounts, results, strict=True):
        if refusal is not None:
            runtime.retire(account.name, refusal)
        elif uid and (other := seen.setdefault((uid, account.demo), account)) != account:
            log.warning("accounts %s and %s are the same OKX account (uid %s): requests, "
                        "approvers and one-open-request apply to each name separately; "
                        "give each key its own account, or remove one name", other,
                        account, uid)
    if runtime.clients:
        return []
    return ["no OKX account can be used: "
            + "; ".join(f"{account}: {why}" for account, why in runtime.missing.items())]


async def _check_account(runtime: Runtime, account: Account, unknown_uids: RateLimiter
                         ) -> tuple[str | None, str]:
    """(None, its uid) when usable, (None, "") when OKX didn't answer; (the reason, "")
    when OKX refused the key."""
    version = await _reading_version(runtime, account)
    try:
        async with unknown_uids.slot():  # (its wait is not part of the read's time)
            config = await asyncio.wait_for(
                runtime.clients[account.name].get_account_config(), OKX_CHECK_SECONDS)
    except OkxRejectedError as exc:
        log.error("OKX refused the %s account's API key at start: %s (OKX code %s)%s; "
                  "that account is unavailable until the key is fixed and the bot "
                  "restarted", account, exc.explanation, exc.code,
                  f" {exc.operator_hint}" if exc.operator_hint else "")
        return f"OKX refused its API key ({exc.code})", ""
    except (OkxError, TimeoutError) as exc:
        code = exc.code if isinstance(exc, OkxError) else "timeout"
        log.warning("could not read the %s account at start (%s); it will be tried again "
                    "when used", account, code)
        return None, ""
    log.info("OKX %s account ok: uid %s, %s, auto repay %s", account, config.uid,
             config.mode_name, "ON" if config.auto_repay else "OFF")
    if version is not None:
        with _unrecorded(account):
            await runtime.service.record(account, config, version)
    return None, config.uid


async def _reading_version(runtime: Runtime, account: Account) -> int | None:
    with _unrecorded(account):
        return await runtime.service.store.reading_version(account)
    return None


@contextlib.contextmanager
def _unrecorded(account: Account) -> Iterator[None]:
    """The database failing here costs the start-up reading only: the drift watch's
    next round records one."""
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        log.warning("could not record the %s account's state at start (%s)", account,
                    type(exc).__name__)
