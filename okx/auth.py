"""Signing requests the way OKX documents it (REST authentication).

OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath + body)),
where requestPath includes the query string and body is the exact bytes sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx


@dataclass(frozen=True)
class Credentials:
    """One OKX API key. The secret and passphrase never show in repr or str."""

    api_key: str
    secret: str = field(repr=False)
    passphrase: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(api_key={mask(self.api_key)!r})"

    __str__ = __repr__


def mask(value: str) -> str:
    """A short, recognisable, non-reversible form of an identifier for logs."""
    return value[:4] + "…" if len(value) > 8 else "…"


def timestamp(epoch_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as OK-ACCESS-TIMESTAMP wants."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def signature(secret: str, prehash: bytes) -> str:
    digest = hmac.new(secret.encode(), prehash, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def prehash(ts: str, method: str, request_path: str, body: bytes) -> bytes:
    return ts.encode() + method.upper().encode() + request_path.encode() + body


class OkxAuth(httpx.Auth):
    """Adds OKX's four OK-ACCESS-* headers, signed over the very bytes sent."""

    requires_request_body = True

    def __init__(self, credentials: Credentials, *, demo: bool, now: Callable[[], float]) -> None:
        self._credentials = credentials
        self._demo = demo
        self._now = now

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        ts = timestamp(self._now())
        path = request.url.raw_path.decode("ascii")
        message = prehash(ts, request.method, path, request.content)
        request.headers["OK-ACCESS-KEY"] = self._credentials.api_key
        request.headers["OK-ACCESS-SIGN"] = signature(self._credentials.secret, message)
        request.headers["OK-ACCESS-TIMESTAMP"] = ts
        request.headers["OK-ACCESS-PASSPHRASE"] = self._credentials.passphrase
        if self._demo:
            request.headers["x-simulated-trading"] = "1"
        yield request
