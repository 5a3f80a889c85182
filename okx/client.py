"""OkxClient: the signed REST calls this bot makes, with retries, clock sync and limits."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx

from okx.auth import Credentials, OkxAuth
from okx.errors import (
    OkxClockError,
    OkxError,
    OkxProtocolError,
    OkxRateLimitError,
    OkxUnavailableError,
    OkxWithdrawnError,
    error_for,
)
from okx.models import AccountConfig, as_bool
from okx.ratelimit import AccountLimits, LimitRegistry, Sleep, shared_registry
from okx.retry import RetryPolicy

DEFAULT_BASE_URL = "https://www.okx.com"
CONFIG_PATH = "/api/v5/account/config"
SET_AUTO_REPAY_PATH = "/api/v5/account/set-auto-repay"
TIME_PATH = "/api/v5/public/time"

log = logging.getLogger("okx")
T = TypeVar("T")
Data = list[dict[str, Any]]
# Told about each HTTP request made: (path, OKX code — "0" on success —, seconds).
Observer = Callable[[str, str, float], None]


@dataclass(frozen=True)
class Endpoint:
    """One OKX REST endpoint; a `limited` one is kept within 5 / 2 s per uid."""

    method: str
    path: str
    signed: bool = True
    limited: bool = True


CONFIG = Endpoint("GET", CONFIG_PATH)
SET_AUTO_REPAY = Endpoint("POST", SET_AUTO_REPAY_PATH)
SERVER_TIME = Endpoint("GET", TIME_PATH, signed=False, limited=False)


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request to make, and how to read the `data` of its answer."""

    endpoint: Endpoint
    read: Callable[[Data], T]
    body: bytes = b""
    # Asked right before each attempt is sent: False withdraws the request.
    proceed: Callable[[], Awaitable[bool]] | None = None


class OkxClient:
    """One OKX account (live or demo), reached with its own API key.

    Limits: OKX counts set-auto-repay and account/config per user ID (uid), and accounts
    may share a uid, so clients share their limiters through a `LimitRegistry` (by
    default one for the whole program). A client only learns its uid from an
    account/config answer; until then it sends one request at a time on limits of its
    own, so that clients not yet aware of sharing a uid can't burst past OKX together,
    and then adopts the uid's limits (the bot reads every account's config at start).

    Seams for tests: `transport` (or a whole `http_client`), `clock` (wall time, for
    signing), `monotonic` and `sleep` (for backoff and the limiters), `retry`, `limits`.
    `observe` hears of every HTTP request sent (metrics), retries included.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        demo: bool = False,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        retry: RetryPolicy | None = None,
        limits: LimitRegistry | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.demo = demo
        self._credentials = credentials
        self._owns_http = http_client is None
        # A small pool: httpcore checks every pooled connection on each request, and one
        # account never needs many at once (writes are limited to 5 / 2 s anyway).
        self._http = http_client or httpx.AsyncClient(
            transport=transport, limits=httpx.Limits(max_connections=4), verify=shared_tls())
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._retry = retry or RetryPolicy()
        self._registry = limits
        self._observe = observe or unobserved
        self._own_limits = AccountLimits(clock=monotonic, sleep=sleep)
        self._limits = self._own_limits  # the uid's, once known
        self._uid_known = False  # (the first client of a uid keeps its own limits: those
        #                          become the uid's, so identity can't tell)
        self._uid_unknown = asyncio.Lock()  # one request at a time until the uid is known
        self.clock_offset = 0.0  # seconds to add to our clock to get OKX's
        self._auth = OkxAuth(credentials, demo=demo, now=lambda: self._clock() + self.clock_offset)

    def __repr__(self) -> str:
        env = "demo" if self.demo else "live"
        return f"OkxClient({self._credentials!r}, {env})"

    async def __aenter__(self) -> OkxClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def get_account_config(self) -> AccountConfig:
        return await self._call(Call(CONFIG, read=account_config))

    async def set_auto_repay(self, enabled: bool, *,
                             proceed: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Ask OKX to switch auto repay; returns the value OKX confirms. `proceed` is
        asked right before each attempt (retries included) is sent; when it says no,
        OkxWithdrawnError and nothing more is sent: a caller whose right to write has
        lapsed (a paused process whose job another took over) can't write late."""
        body = json.dumps({"autoRepay": enabled}, separators=(",", ":")).encode()
        return await self._call(Call(SET_AUTO_REPAY, read=confirmed_auto_repay, body=body,
                                     proceed=proceed))

    async def server_time(self) -> float:
        """OKX's clock, in epoch seconds (unsigned public endpoint)."""
        return await self._call(Call(SERVER_TIME, read=server_time))

    async def sync_clock(self) -> float:
        """Measure our clock against OKX's and keep the offset for signing."""
        before = self._clock()
        server = await self.server_time()
        after = self._clock()
        self.clock_offset = server - (before + after) / 2
        log.info("clock re-synced offset=%.3fs", self.clock_offset)
        return self.clock_offset

    async def _call(self, call: Call[T]) -> T:
        """Attempts until one succeeds, re-syncing the clock once and backing off on
        rate limits and outages, within the retry policy's attempts and deadline."""
        method, path = call.endpoint.method, call.endpoint.path
        deadline = self._monotonic() + self._retry.deadline
        attempt, resynced = 0, False
        while True:
            attempt += 1
            try:
                return await self._attempt(call, deadline)
            except OkxClockError:
                if resynced:
                    raise
                resynced = True
                await self.sync_clock()
            except (OkxRateLimitError, OkxUnavailableError) as exc:
                delay = self._retry.backoff(attempt)
                out_of_time = self._monotonic() + delay >= deadline
                if attempt >= self._retry.max_attempts or out_of_time:
                    log.warning("%s %s gave up after %d attempts code=%s msg=%r",
                                method, path, attempt, exc.code, exc.msg)
                    raise
                log.info("%s %s attempt %d failed code=%s; retrying in %.2fs",
                         method, path, attempt, exc.code, delay)
                await self._sleep(delay)

    async def _attempt(self, call: Call[T], deadline: float) -> T:
        """One try; whatever goes wrong comes out as an OkxError (the one place)."""
        try:
            if not call.endpoint.limited:
                return await self._send(call, deadline)
            return await self._limited(call, deadline)
        except OkxError:
            raise
        except Exception as exc:  # SPEC §4: nothing but OkxError leaves the client
            error = as_okx_error(exc)
            # A request that could not be sent may be quoted in the cause: a header value
            # (the passphrase) included. Never chain that one.
            raise error from (None if error.code == "unsendable" else exc)

    async def _limited(self, call: Call[T], deadline: float) -> T:
        if not self._uid_known:
            async with self._uid_unknown:
                if not self._uid_known:  # still unknown: it may be learnt now
                    return await self._learning_uid(call, deadline)
        async with self._slot(self._limits, call, deadline):
            return await self._send(call, deadline)

    async def _learning_uid(self, call: Call[T], deadline: float) -> T:
        """A request made on this client's own limits; an account config names the uid,
        whose limits this client shares from then on (nothing of ours is in flight)."""
        async with self._slot(self._own_limits, call, deadline):
            result = await self._send(call, deadline)
        if isinstance(result, AccountConfig):
            registry = self._registry or shared_registry()
            self._limits = registry.adopt(result.uid, self._own_limits)
            self._uid_known = True
        return result

    @asynccontextmanager
    async def _slot(self, limits: AccountLimits, call: Call[T], deadline: float
                    ) -> AsyncIterator[None]:
        """A slot under OKX's limit, waited for until the deadline at most; past it the
        request is not sent at all (code "busy"), so a burst can't queue up without end."""
        try:
            slot = limits.slot(call.endpoint.path, max(0.0, deadline - self._monotonic()))
            await slot.__aenter__()
        except TimeoutError:
            raise OkxRateLimitError("busy", "no free slot under OKX's rate limit in time"
                                    ) from None
        try:
            yield
        finally:
            await slot.__aexit__(None, None, None)

    async def _send(self, call: Call[T], deadline: float) -> T:
        if call.proceed is not None:
            await go_ahead(call.proceed)
        started = self._monotonic()
        try:
            result = await self._request(call, deadline)
        except Exception as exc:
            code = exc.code if isinstance(exc, OkxError) else as_okx_error(exc).code
            self._observe(call.endpoint.path, code, self._monotonic() - started)
            raise
        self._observe(call.endpoint.path, "0", self._monotonic() - started)
        return result

    async def _request(self, call: Call[T], deadline: float) -> T:
        """One HTTP request and its answer read."""
        endpoint = call.endpoint
        timeout = max(0.001, min(self._timeout, deadline - self._monotonic()))
        headers = {"Content-Type": "application/json"} if call.body else {}
        response = await self._http.request(
            endpoint.method, self._base_url + endpoint.path, content=call.body or None,
            headers=headers, auth=self._auth if endpoint.signed else httpx.USE_CLIENT_DEFAULT,
            timeout=timeout,
        )
        log.debug("%s %s -> HTTP %d", endpoint.method, endpoint.path, response.status_code)
        return call.read(parse_envelope(response))


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """One TLS context for every client: each one httpx makes loads the whole CA bundle
    (about 1 MB resident), and a bot with 20 accounts would hold 20 copies."""
    return httpx.create_ssl_context()


def unobserved(path: str, code: str, seconds: float) -> None:
    """No one listens."""


async def go_ahead(proceed: Callable[[], Awaitable[bool]]) -> None:
    """The caller's go-ahead, or OkxWithdrawnError: "withdrawn" when it says no,
    "unconfirmed" when the check itself failed (never send unsure)."""
    try:
        go = await proceed()
    except Exception as exc:
        raise OkxWithdrawnError("unconfirmed", "the go-ahead could not be checked "
                                f"({type(exc).__name__}); not sent") from None
    if not go:
        raise OkxWithdrawnError("withdrawn", "the request was withdrawn before it was sent")


def as_okx_error(exc: Exception) -> OkxError:
    """The OkxError standing for anything else that went wrong in an attempt.

    Only the exception's type goes into `msg`: its text may quote what was being sent.
    """
    name = type(exc).__name__
    unsendable = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)
    if isinstance(exc, unsendable):  # nothing reached OKX, and nothing will next time
        return OkxProtocolError("unsendable", name)
    if isinstance(exc, httpx.TransportError):  # timeouts, connection errors: try again
        return OkxUnavailableError("network", name)
    if isinstance(exc, httpx.DecodingError):  # an answer came, so the request arrived
        return OkxProtocolError("undecodable", name)
    return OkxProtocolError("protocol", name)


def parse_envelope(response: httpx.Response) -> Data:
    """The `data` of a successful answer, or the typed error it stands for.

    Any HTTP 5xx is a server error whatever its body says. Otherwise success is code "0"
    in the body, whatever the HTTP status; items may carry their own sCode.
    """
    if response.is_server_error:
        raise server_error(response)
    try:
        payload = response.json()
        code, msg = str(payload["code"]), str(payload.get("msg", ""))
        data = payload.get("data") or []
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise error_for_status(response.status_code) from exc
    if code != "0":
        raise error_for(code, msg)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise OkxProtocolError("protocol", "data is not a list of objects")
    for item in data:
        if str(item.get("sCode", "0")) != "0":
            raise error_for(str(item["sCode"]), str(item.get("sMsg", "")))
    return data


def server_error(response: httpx.Response) -> OkxUnavailableError:
    """An HTTP 5xx; OKX's code and message, when the body has them, are kept for the log."""
    status = response.status_code
    try:
        payload = response.json()
        said = f"; OKX code {payload['code']}: {str(payload.get('msg', ''))[:200]}"
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        said = ""
    return OkxUnavailableError(f"http-{status}", f"HTTP {status}{said}")


def error_for_status(status: int) -> OkxError:
    """An answer without OKX's JSON envelope: judge by the HTTP status alone."""
    if status == 429:
        return OkxRateLimitError("50011", f"HTTP {status}")
    if status >= 500:
        return OkxUnavailableError(f"http-{status}", f"HTTP {status}")
    return OkxProtocolError(f"http-{status}", f"HTTP {status} without an OKX answer")


def first(data: Data) -> dict[str, Any]:
    if not data:
        raise OkxProtocolError("protocol", "empty data")
    return data[0]


def account_config(data: Data) -> AccountConfig:
    return AccountConfig.from_okx(first(data))


def confirmed_auto_repay(data: Data) -> bool:
    try:
        return as_bool(first(data)["autoRepay"])
    except (KeyError, ValueError) as exc:
        raise OkxProtocolError("protocol", "answer without autoRepay") from exc


def server_time(data: Data) -> float:
    """Epoch seconds from /public/time's `ts`: milliseconds, as a string of digits."""
    ts = first(data).get("ts")
    if isinstance(ts, int) and not isinstance(ts, bool) and ts >= 0:
        return ts / 1000
    if isinstance(ts, str) and ts.isascii() and ts.isdigit():
        return int(ts) / 1000
    raise OkxProtocolError("protocol", "answer without a usable ts")
