"""A loopback server that speaks OKX's REST protocol for the endpoints this bot uses.

It checks requests the way OKX does: the four OK-ACCESS-* headers, a 30 s timestamp
window, HMAC-SHA256 over timestamp + method + path?query + the raw body bytes, demo/live
key separation (50101), passphrase, IP whitelist, Trade permission, account mode, and
5 requests / 2 s per user on set-auto-repay (HTTP 429, code 50011). Faults can be queued.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer

SET_AUTO_REPAY = "/api/v5/account/set-auto-repay"
CONFIG = "/api/v5/account/config"
TIMESTAMP_WINDOW = 30.0


@dataclass
class FakeAccount:
    api_key: str
    secret: str
    passphrase: str
    demo: bool = False
    uid: str = "448812345678"
    acct_lv: str = "1"
    enable_spot_borrow: bool = True
    auto_repay: bool = False
    perm: str = "read_only,trade"
    label: str = "treasury-bot"
    ip_allowed: bool = True


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float
    code: str = ""


@dataclass
class Fault:
    # "http500" (an HTML page) | "http500-json" (HTTP 500 with OKX's envelope, code 50000)
    # | "contradict" (set-auto-repay answers the opposite of what was asked, changes nothing)
    # | "drop" | "slow" | an OKX code such as "50001"
    kind: str
    seconds: float = 0.0
    path: str | None = None


class OkxError(Exception):
    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        self.code, self.msg, self.status = code, msg, status


@dataclass
class FakeOkx(LoopbackServer):
    accounts: dict[str, FakeAccount] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    clock_offset: float = 0.0  # OKX's clock minus ours
    latency: float = 0.0  # added to every answer
    rate_limit: tuple[int, float] = (5, 2.0)

    def __post_init__(self) -> None:
        super().__init__()
        self._faults: deque[Fault] = deque()
        self._arrivals: dict[tuple[str, str], deque[float]] = {}  # (uid, path) → times
        self._lock = threading.Lock()

    # --- what tests arrange -------------------------------------------------
    def add_account(self, **fields: Any) -> FakeAccount:
        account = FakeAccount(**fields)
        self.accounts[account.api_key] = account
        return account

    def fail_next(self, kind: str, times: int = 1, *, seconds: float = 0.0,
                  path: str | None = None) -> None:
        with self._lock:
            self._faults.extend(Fault(kind, seconds, path) for _ in range(times))

    def summary(self) -> list[str]:
        return [f"{r.method} {r.path} {r.code}" for r in self.requests]

    def codes(self, path: str = SET_AUTO_REPAY) -> list[str]:
        return [r.code for r in self.requests if r.path.split("?")[0] == path]

    def now(self) -> float:
        return time.time() + self.clock_offset

    # --- the server ---------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = Recorded(request.method, request.path_qs, dict(request.headers), body, self.now())
        self._record(record, self.requests)
        fault = self._take_fault(request.path)
        if fault is not None:
            answer = await self._apply(fault, request)
            if answer is not None:
                record.code = f"fault:{fault.kind}"
                return answer
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            data = self._route(request, body)
        except OkxError as exc:
            record.code = exc.code
            return web.json_response({"code": exc.code, "msg": exc.msg, "data": []},
                                     status=exc.status)
        record.code = "0"
        return web.json_response({"code": "0", "msg": "", "data": data})

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in (None, path) and path != "/api/v5/public/time":
                    self._faults.remove(fault)
                    return fault
        return None

    async def _apply(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if fault.kind == "http500":
            return web.Response(status=500, text="<html>Internal Server Error</html>")
        if fault.kind == "http500-json":
            return web.json_response({"code": "50000", "msg": "injected", "data": []},
                                     status=500)
        if fault.kind == "contradict":
            asked = json.loads(await request.read())["autoRepay"]
            return web.json_response({"code": "0", "msg": "", "data": [{"autoRepay": not asked}]})
        status = 429 if fault.kind == "50011" else 200
        return web.json_response({"code": fault.kind, "msg": "injected", "data": []},
                                 status=status)

    def _route(self, request: web.Request, body: bytes) -> list[dict[str, Any]]:
        if request.path == "/api/v5/public/time":
            return [{"ts": str(int(self.now() * 1000))}]
        account = self._authenticate(request, body)
        if request.method == "GET" and request.path == CONFIG:
            self._count(account.uid, CONFIG)
            return [self._config(account)]
        if request.method == "POST" and request.path == SET_AUTO_REPAY:
            return [self._set_auto_repay(account, body)]
        raise OkxError("50000", f"no such endpoint {request.method} {request.path}", 404)

    def _authenticate(self, request: web.Request, body: bytes) -> FakeAccount:
        headers = request.headers
        for name, code in (("OK-ACCESS-KEY", "50103"), ("OK-ACCESS-PASSPHRASE", "50104"),
                           ("OK-ACCESS-SIGN", "50106"), ("OK-ACCESS-TIMESTAMP", "50107")):
            if not headers.get(name):
                raise OkxError(code, f"Request header {name} can't be empty.", 401)
        ts = headers["OK-ACCESS-TIMESTAMP"]
        try:
            sent = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            if not ts.endswith("Z") or len(ts) != 24:
                raise ValueError(ts)
        except ValueError:
            raise OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP", 401) from None
        if abs(self.now() - sent) > TIMESTAMP_WINDOW:
            raise OkxError("50102", "Timestamp request expired", 401)
        account = self.accounts.get(headers["OK-ACCESS-KEY"])
        if account is None:
            raise OkxError("50111", "Invalid OK-ACCESS-KEY", 401)
        if (headers.get("x-simulated-trading") == "1") != account.demo:
            raise OkxError("50101", "APIKey does not match current environment.", 401)
        if not hmac.compare_digest(headers["OK-ACCESS-PASSPHRASE"], account.passphrase):
            raise OkxError("50105", "Invalid OK-ACCESS-PASSPHRASE", 401)
        prehash = ts.encode() + request.method.encode() + request.raw_path.encode() + body
        expected = base64.b64encode(
            hmac.new(account.secret.encode(), prehash, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(headers["OK-ACCESS-SIGN"], expected):
            raise OkxError("50113", "Invalid Sign", 401)
        if not account.ip_allowed:
            raise OkxError("50110", "Your IP 127.0.0.1 is not in linking trusted IP addresses.",
                           401)
        return account

    def _config(self, account: FakeAccount) -> dict[str, Any]:
        return {
            "uid": account.uid, "acctLv": account.acct_lv, "label": account.label,
            "enableSpotBorrow": account.enable_spot_borrow,
            "spotBorrowAutoRepay": account.auto_repay, "perm": account.perm,
            "posMode": "net_mode", "autoLoan": False, "level": "Lv1",
        }

    def _set_auto_repay(self, account: FakeAccount, body: bytes) -> dict[str, Any]:
        self._count(account.uid, SET_AUTO_REPAY)
        if "trade" not in account.perm.split(","):
            raise OkxError("50120", "API key doesn't have permission to use this endpoint.")
        try:
            value = json.loads(body)["autoRepay"]
        except (ValueError, KeyError, TypeError):
            raise OkxError("51000", "Parameter autoRepay error") from None
        if not isinstance(value, bool):
            raise OkxError("51000", "Parameter autoRepay error")
        if account.acct_lv != "1" or not account.enable_spot_borrow:
            raise OkxError("51010", "You can't complete this request under your current "
                                    "account mode.")
        account.auto_repay = value
        return {"autoRepay": value}

    def _count(self, uid: str, path: str) -> None:
        """OKX's limit: `rate_limit` requests per user ID, per endpoint, by arrival."""
        limit, period = self.rate_limit
        now = time.monotonic()
        window = self._arrivals.setdefault((uid, path), deque())
        while window and window[0] <= now - period:
            window.popleft()
        if len(window) >= limit:
            raise OkxError("50011", "Too Many Requests", 429)
        window.append(now)
