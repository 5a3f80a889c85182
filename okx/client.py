"""OkxClient: the signed REST calls this bot makes, with retries, clock sync and limits."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from okx.auth import Credentials, OkxAuth
from okx.errors import (
    OkxClockError,
    OkxError,
    OkxProtocolError,
    OkxRateLimitError,
    OkxUnavailableError,
    error_for,
)
from okx.models import AccountConfig, as_bool
from okx.ratelimit import RateLimiter, Sleep
from okx.retry import RetryPolicy

DEFAULT_BASE_URL = "https://www.okx.com"
CONFIG_PATH = "/api/v5/account/config"
SET_AUTO_REPAY_PATH = "/api/v5/account/set-auto-repay"
TIME_PATH = "/api/v5/public/time"

log = logging.getLogger("okx")


class OkxClient:
    """One OKX account (live or demo). Keep one per account: it owns that account's limiter.

    Seams for tests: `transport` (or a whole `http_client`), `clock` (wall time, for
    signing), `monotonic` and `sleep` (for backoff and the limiter), `retry`.
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
        limiter: RateLimiter | None = None,
    ) -> None:
        self.demo = demo
        self._credentials = credentials
        self._owns_http = http_client is None
        # A small pool: httpcore checks every pooled connection on each request, and one
        # account never needs many at once (writes are limited to 5 / 2 s anyway).
        self._http = http_client or httpx.AsyncClient(
            transport=transport, limits=httpx.Limits(max_connections=4))
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._retry = retry or RetryPolicy()
        self._limiter = limiter or RateLimiter(clock=monotonic, sleep=sleep)
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
        data = await self._call("GET", CONFIG_PATH)
        return AccountConfig.from_okx(first(data))

    async def set_auto_repay(self, enabled: bool) -> bool:
        """Ask OKX to switch auto repay; returns the value OKX confirms."""
        body = json.dumps({"autoRepay": enabled}, separators=(",", ":")).encode()
        data = await self._call("POST", SET_AUTO_REPAY_PATH, body=body, limited=True)
        try:
            return as_bool(first(data)["autoRepay"])
        except (KeyError, ValueError) as exc:
            raise OkxProtocolError("protocol", "answer without autoRepay") from exc

    async def server_time(self) -> float:
        """OKX's clock, in epoch seconds (unsigned public endpoint)."""
        data = await self._call("GET", TIME_PATH, signed=False)
        try:
            return int(first(data)["ts"]) / 1000
        except (KeyError, ValueError) as exc:
            raise OkxProtocolError("protocol", "answer without ts") from exc

    async def sync_clock(self) -> float:
        """Measure our clock against OKX's and keep the offset for signing."""
        before = self._clock()
        server = await self.server_time()
        after = self._clock()
        self.clock_offset = server - (before + after) / 2
        log.info("clock re-synced offset=%.3fs", self.clock_offset)
        return self.clock_offset

    async def _call(
        self, method: str, path: str, *, body: bytes = b"", signed: bool = True,
        limited: bool = False,
    ) -> list[dict[str, Any]]:
        deadline = self._monotonic() + self._retry.deadline
        attempt, resynced = 0, False
        while True:
            attempt += 1
            try:
                return await self._attempt(method, path, body, signed, limited, deadline)
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

    async def _attempt(
        self, method: str, path: str, body: bytes, signed: bool, limited: bool, deadline: float
    ) -> list[dict[str, Any]]:
        if limited:
            async with self._limiter.slot():
                return await self._send(method, path, body, signed, deadline)
        return await self._send(method, path, body, signed, deadline)

    async def _send(
        self, method: str, path: str, body: bytes, signed: bool, deadline: float
    ) -> list[dict[str, Any]]:
        timeout = max(0.001, min(self._timeout, deadline - self._monotonic()))
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            response = await self._http.request(
                method, self._base_url + path, content=body or None, headers=headers,
                auth=self._auth if signed else httpx.USE_CLIENT_DEFAULT, timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise OkxUnavailableError("network", type(exc).__name__) from exc
        log.debug("%s %s -> HTTP %d", method, path, response.status_code)
        return parse_envelope(response)


def parse_envelope(response: httpx.Response) -> list[dict[str, Any]]:
    """The `data` of a successful answer, or the typed error it stands for.

    Success is code "0" in the body, whatever the HTTP status; items may carry their
    own sCode.
    """
    try:
        payload = response.json()
        code, msg = str(payload["code"]), str(payload.get("msg", ""))
        data = payload.get("data") or []
    except (ValueError, KeyError, TypeError) as exc:
        raise error_for_status(response.status_code) from exc
    if code != "0":
        raise error_for(code, msg)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise OkxProtocolError("protocol", "data is not a list of objects")
    for item in data:
        if str(item.get("sCode", "0")) != "0":
            raise error_for(str(item["sCode"]), str(item.get("sMsg", "")))
    return data


def error_for_status(status: int) -> OkxError:
    """An answer without OKX's JSON envelope: judge by the HTTP status alone."""
    if status == 429:
        return OkxRateLimitError("50011", f"HTTP {status}")
    if status >= 500:
        return OkxUnavailableError(f"http-{status}", f"HTTP {status}")
    return OkxProtocolError(f"http-{status}", f"HTTP {status} without an OKX answer")


def first(data: list[dict[str, Any]]) -> dict[str, Any]:
    if not data:
        raise OkxProtocolError("protocol", "empty data")
    return data[0]
