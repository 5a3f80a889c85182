"""Figure 10 (`python -m bench drift`): what the drift watch costs OKX, and approvals.

(a) The watch's OKX request rate with 20 accounts (each its own uid) at the default
    interval (300 s): the bot's service and a DriftWatch in this process, against the
    loopback OKX, over ROUNDS intervals on a virtual clock (the watch's pauses move it
    forward at once; the reads themselves are real). Reported: requests per second and
    the most requests in any 2 s window per uid, in virtual time.
(b) 20 accounts sharing ONE uid, the watch at its minimum interval (5 s), and real
    approvals meanwhile (a `python -m bot --http` process: command, approval message,
    click, OKX write, thread reply), against the loopback OKX, which answers 50011
    beyond 5 requests / 2 s per uid and endpoint, as OKX does. Reported: OKX's 50011
    answers after start-up (goal 0), the most account/config arrivals in any 2 s window
    for the uid, and click -> thread reply with and without the watch.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bench.__main__ import (
    APPROVALS,
    BOB,
    SIGNING,
    bot_env,
    free_port,
    percentile,
    posted_after,
    signed_post,
    spawn,
    stop,
    thread_of,
    verdict,
    wait_ready,
)
from bot.accounts import Account
from bot.app import build
from bot.config import Settings
from bot.drift_watch import DriftWatch
from okx import Credentials, RetryPolicy
from tests.fakes.okx_server import CONFIG, FakeOkx
from tests.fakes.slack_requests import block_action, form_payload
from tests.fakes.slack_server import FakeSlack

ACCOUNTS = 20
ROUNDS = 4  # (a): intervals driven on the virtual clock
DEFAULT_INTERVAL, MIN_INTERVAL = 300.0, 5
APPROVALS_PER_CASE, WARMUP = 30, 1  # (b): approvals per case, unmeasured ones first
SHARED_UID = "880000000088"
WINDOW = 2.0  # OKX's rate-limit window


def keys(prefix: str) -> dict[str, Credentials]:
    return {f"{prefix}-{n:02d}": Credentials(f"bench-{prefix}-{n:02d}-key",
                                             f"bench-{prefix}-{n:02d}-secret",
                                             f"bench-{prefix}-{n:02d}-pass")
            for n in range(1, ACCOUNTS + 1)}


def credentials_env(accounts: dict[str, Credentials]) -> dict[str, str]:
    env = {"AUTOREPAY_ACCOUNTS": ", ".join(accounts)}
    for name, creds in accounts.items():
        key, secret, passphrase = Account(name).env_names
        env |= {key: creds.api_key, secret: creds.secret, passphrase: creds.passphrase}
    return env


class StampedOkx(FakeOkx):
    """FakeOkx that notes each request's (uid, path, time on `clock`) as it arrives."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.clock = time.monotonic
        self.stamps: list[tuple[str, str, float]] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        account = self.accounts.get(request.headers.get("OK-ACCESS-KEY", ""))
        self._record((account.uid if account else "", request.path, self.clock()),
                     self.stamps)
        return await super()._handle(request)


def busiest_window(times: Iterable[float], window: float = WINDOW) -> int:
    """The most of `times` in any half-open window of `window` seconds."""
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def per_uid_peak(stamps: list[tuple[str, str, float]], path: str = CONFIG) -> int:
    by_uid: dict[str, list[float]] = defaultdict(list)
    for uid, at_path, at in stamps:
        if at_path == path:
            by_uid[uid].append(at)
    return max((busiest_window(times) for times in by_uid.values()), default=0)


# --- (a) the request rate at the default interval ------------------------------------------
@dataclass
class VirtualClock:
    """Monotonic time, plus whatever the watch's pauses skipped."""

    skipped: float = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    async def sleep(self, seconds: float) -> None:
        self.skipped += max(0.0, seconds)


async def request_rate(slack: FakeSlack, tmp: Path) -> dict[str, Any]:
    okx = StampedOkx()
    okx.start()
    accounts = keys("rate")
    for n, creds in enumerate(accounts.values(), start=1):
        okx.add_account(api_key=creds.api_key, secret=creds.secret,
                        passphrase=creds.passphrase, uid=f"66000000{n:04d}")
    clock = VirtualClock()
    okx.clock = clock
    settings = Settings(
        slack_bot_token=slack.bot_token, slack_signing_secret=SIGNING, slack_app_token="",
        slack_api_url=slack.api_url, approval_channel=APPROVALS, requesters=("U0ALICE01",),
        approvers=(BOB,), db_path=tmp / "rate.db", okx_base_url=okx.url,
        accounts=tuple(Account(name) for name in accounts))
    runtime = await build(settings, credentials_env(accounts), retry=RetryPolicy(deadline=5.0))
    watch = DriftWatch(runtime.service, DEFAULT_INTERVAL, "bench", clock=clock,
                       sleep=clock.sleep)
    started = clock()
    try:
        for _ in range(ROUNDS):  # as DriftWatch.run: a round every interval
            began = clock()
            await watch.check_all()
            await clock.sleep(began + DEFAULT_INTERVAL - clock())
    finally:
        for client in runtime.clients.values():
            await client.aclose()
        await runtime.close_store()
        okx.stop()
    elapsed = clock() - started
    config = [at for _, path, at in okx.stamps if path == CONFIG]
    return {"requests": len(okx.stamps), "config": len(config), "seconds": elapsed,
            "peak": per_uid_peak(okx.stamps), "uids": len({uid for uid, _, _ in okx.stamps}),
            "gap": watch.gap}


# --- (b) approvals under the watch at its minimum interval, one shared uid -----------------
async def approvals_under_watch(slack: FakeSlack, tmp: Path, *, drift_seconds: int
                                ) -> dict[str, Any]:
    okx = StampedOkx()
    okx.start()
    accounts = keys("shared")
    for creds in accounts.values():
        okx.add_account(api_key=creds.api_key, secret=creds.secret,
                        passphrase=creds.passphrase, uid=SHARED_UID)
    port = free_port()
    env = {name: value for name, value in bot_env(slack, okx, port, tmp / "x.db").items()
           if not name.startswith("OKX_") or name == "OKX_BASE_URL"}
    env |= credentials_env(accounts) | {
        "AUTOREPAY_DB": str(tmp / f"shared-{drift_seconds}.db"),
        "AUTOREPAY_DRIFT_CHECK_SECONDS": str(drift_seconds)}
    bot = spawn("bot", ["--http"], env)
    out: dict[str, Any] = {"ms": [], "ok": 0}
    try:
        wait_ready(port, 60.0)
        ready_at = len(okx.stamps)
        out["startup_50011"] = okx.codes(CONFIG).count("50011")
        await asyncio.sleep(drift_seconds + 0.5 if drift_seconds else 0.0)  # rounds begun
        await approve_each(slack, okx, port, list(accounts), out)
        out["watch_reads"] = sum(1 for _, path, _ in okx.stamps[ready_at:] if path == CONFIG)
        out["after_ready"] = [r.code for r in okx.requests[ready_at:]]
        out["peak"] = per_uid_peak(okx.stamps[ready_at:])
    finally:
        stop(bot)
        okx.stop()
    return out


async def approve_each(slack: FakeSlack, okx: FakeOkx, port: int, names: list[str],
                       out: dict[str, Any]) -> None:
    """One approval after another, on a different account each time: command, click
    (measured: click -> thread reply), then the next."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        for i in range(WARMUP + APPROVALS_PER_CASE):
            name = names[i % len(names)]
            creds_key = f"bench-{name}-key"
            text = f"{name} " + ("off" if okx.accounts[creds_key].auto_repay else "on")
            call = await posted_after(slack, client, port, text, 30.0)
            ts = str(call.answer["ts"])
            click = block_action(BOB, APPROVALS, ts, call.args, "autorepay_approve",
                                 slack.response_url(f"drift-click{i}"))
            started = time.perf_counter()
            await signed_post(client, port, form_payload(click))
            reply = await asyncio.to_thread(slack.wait_for, partial(thread_of, slack, ts),
                                            30.0)
            if i >= WARMUP:
                out["ms"].append((reply[0].at - started) * 1000)
                out["ok"] += "Auto repay is now" in str(reply[0].args.get("text"))


async def drift_figures(slack: FakeSlack, tmp: Path) -> dict[str, Any]:
    return {"rate": await request_rate(slack, tmp),
            "without": await approvals_under_watch(slack, tmp, drift_seconds=0),
            "with": await approvals_under_watch(slack, tmp, drift_seconds=MIN_INTERVAL)}


def report_drift(figures: dict[str, Any]) -> None:
    rate = figures["rate"]
    per_second = rate["requests"] / rate["seconds"]
    print(f"\n10. drift watch. (a) {ACCOUNTS} accounts ({rate['uids']} uids), default "
          f"interval {DEFAULT_INTERVAL:.0f} s, {ROUNDS} intervals on a virtual clock")
    print(f"   {rate['requests']} OKX requests ({rate['config']} account/config) in "
          f"{rate['seconds']:.0f} s: {per_second:.4f} requests/s; one read every "
          f"{rate['gap']:.1f} s; most in any 2 s window per uid: {rate['peak']} "
          f"(goal <= 1: {verdict(rate['peak'] <= 1)})")
    print(f"   (b) {ACCOUNTS} accounts sharing one uid, the watch at {MIN_INTERVAL} s, "
          f"{APPROVALS_PER_CASE} approvals one after another ({WARMUP} unmeasured first)")
    for case in ("without", "with"):
        found = figures[case]
        ms = found["ms"]
        codes = found["after_ready"]
        rate_limited = codes.count("50011")
        line = (f"   {case:7} the watch: click -> thread p50 {percentile(ms, 50):.0f} ms, "
                f"p95 {percentile(ms, 95):.0f} ms (max {max(ms):.0f}); {found['ok']}/"
                f"{len(ms)} done; OKX 50011 after start-up: {rate_limited}; account/"
                f"config reads {found['watch_reads']}, most in any 2 s: {found['peak']}"
                if ms else f"   {case:7} the watch: no measurement")
        print(line)
        if found.get("startup_50011"):
            print(f"           (50011 during start-up, before ready: "
                  f"{found['startup_50011']})")
    with_ms, without_ms = figures["with"]["ms"], figures["without"]["ms"]
    if with_ms and without_ms:
        ratio = statistics.median(with_ms) / statistics.median(without_ms)
        no_50011 = figures["with"]["after_ready"].count("50011") == 0
        print(f"   p50 with / without: {ratio:.2f}; goal 0 x 50011 with the watch: "
              f"{verdict(no_50011)}")
