"""Benchmarks on loopback, one run:  python -m bench  (from the repository root).

1. ack latency of /autorepay help and /autorepay on, 20 concurrent signed requests,
   against a bare Bolt app on the same stack, interleaved rounds
2. click → thread reply with OKX answering after 100 ms
3. a burst of 20 OKX writes through the client
4. start-up to /healthz 200, resident memory over 1 000 mixed commands
5. click → start of the OKX write (the loopback OKX server receiving
   POST set-auto-repay): Slack answering; Slack hanging after each click until its
   request is done; Slack hanging after every click for good (calls time out)
6. /autorepay status over 10 named accounts, OKX answering after 100 ms (bench/accounts.py)
7. failover: SIGKILL of the replica running the OKX write, two replicas on PostgreSQL,
   lease 15 s and 5 s (bench/replicas.py)
8. click → thread reply on SQLite and on PostgreSQL (one replica, two), OKX answering
   after 100 ms, interleaved (bench/replicas.py)
9. resident memory over 10 000 mixed commands and clicks, 20 accounts (bench/memory.py)
10. the drift watch: its OKX request rate with 20 accounts at the default interval, and
    approvals under it at its minimum interval, 20 accounts on one uid (bench/drift.py)

Quicker runs while working on figures:  python -m bench write --writes 10   (names: FIGURES)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from okx import Credentials, OkxClient
from tests.fakes.okx_server import SET_AUTO_REPAY, FakeOkx
from tests.fakes.slack_requests import block_action, form_payload, signed_headers, slash_command
from tests.fakes.slack_server import Call, FakeSlack

ROOT = Path(__file__).resolve().parents[1]
SIGNING = "bench-signing-secret"
ALICE, BOB, MALLORY = "U0ALICE01", "U0BOB0001", "U0MALLORY"
APPROVALS, OPS = "C0APPROVE", "C0OPS0001"
LIVE = Credentials("bench-live-key", "bench-live-secret", "bench-live-pass")
DEMO = Credentials("bench-demo-key", "bench-demo-secret", "bench-demo-pass")
BURST = Credentials("bench-burst-key", "bench-burst-secret", "bench-burst-pass")
ROUNDS, CONCURRENCY, CLICKS = 30, 20, 15
COMMANDS = int(os.environ.get("BENCH_COMMANDS", "1000"))  # figure 4 (more: see it level)
WRITES, WARMUP = 40, 2  # figure 5: measured clicks per case, and unmeasured ones first
FIGURES = ("ack", "click", "burst", "startup", "write", "status", "failover", "backends",
           "memory", "drift")


# --- processes ------------------------------------------------------------------------
def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(module: str, args: list[str], env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "AUTOREPAY_LOG_LEVEL": "WARNING",
            # (passed on: `MALLOC_ARENA_MAX=2 python -m bench memory` measures with it)
            **{name: os.environ[name] for name in ("MALLOC_ARENA_MAX",) if name in os.environ}}
    return subprocess.Popen([sys.executable, "-m", module, *args], env={**base, **(env or {})},
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bot_env(slack: FakeSlack, okx: FakeOkx, port: int, db: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": SIGNING,
        "SLACK_API_URL": slack.api_url, "AUTOREPAY_APPROVAL_CHANNEL": APPROVALS,
        "AUTOREPAY_REQUESTERS": ALICE, "AUTOREPAY_APPROVERS": BOB, "AUTOREPAY_DB": str(db),
        "OKX_BASE_URL": okx.url, "AUTOREPAY_HOST": "127.0.0.1", "PORT": str(port),
        "OKX_API_KEY": LIVE.api_key, "OKX_API_SECRET": LIVE.secret,
        "OKX_API_PASSPHRASE": LIVE.passphrase, "OKX_DEMO_API_KEY": DEMO.api_key,
        "OKX_DEMO_API_SECRET": DEMO.secret, "OKX_DEMO_API_PASSPHRASE": DEMO.passphrase,
    }


def wait_ready(port: int, timeout: float = 30.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"nothing ready on port {port}")


def stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# --- requests -------------------------------------------------------------------------
async def signed_post(client: httpx.AsyncClient, port: int, body: str) -> float:
    """Milliseconds from sending a signed request to its HTTP answer (the ack)."""
    started = time.perf_counter()
    response = await client.post(f"http://127.0.0.1:{port}/slack/events", content=body,
                                  headers=signed_headers(SIGNING, body))
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def command(slack: FakeSlack, text: str, user: str = ALICE) -> str:
    return slash_command(text, user, OPS, slack.response_url("bench"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, q):6.1f}" for q in (50, 95, 99))


# --- 1. ack latency ---------------------------------------------------------------------
async def ack_latency(slack: FakeSlack, okx: FakeOkx, tmp: Path) -> dict[str, Any]:
    bot_port, bare_port = free_port(), free_port()
    bot = spawn("bot", ["--http"], bot_env(slack, okx, bot_port, tmp / "ack.db"))
    bare = spawn("bench.bare_app", [str(bare_port), slack.api_url, SIGNING, slack.bot_token])
    wait_ready(bot_port), wait_ready(bare_port)
    samples: dict[str, list[float]] = {f"{who} {text}": [] for who in ("bot", "bare")
                                       for text in ("help", "on")}
    targets = [("bot", bot_port), ("bare", bare_port)]
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
            for round_no in range(ROUNDS + 2):
                order = targets if round_no % 2 == 0 else targets[::-1]  # interleaved
                for text in ("help", "on"):
                    for who, port in order:
                        batch = await asyncio.gather(*(
                            signed_post(client, port, command(slack, text))
                            for _ in range(CONCURRENCY)))
                        if round_no >= 2:  # the first two rounds warm up
                            samples[f"{who} {text}"].extend(batch)
                        # the work after the acks must not spill into the next batch
                        await asyncio.sleep(0.4)
    finally:
        stop(bot), stop(bare)
    return samples


# --- 2. click → thread reply ---------------------------------------------------------------
async def click_to_thread(slack: FakeSlack, okx: FakeOkx, tmp: Path) -> list[float]:
    port = free_port()
    bot = spawn("bot", ["--http"], bot_env(slack, okx, port, tmp / "click.db"))
    wait_ready(port)
    okx.latency = 0.100
    durations: list[float] = []
    try:
        async with httpx.AsyncClient() as client:
            for i in range(CLICKS):
                text = "off" if okx.accounts[LIVE.api_key].auto_repay else "on"
                call = await posted_after(slack, client, port, text)
                ts = str(call.answer["ts"])
                click = block_action(BOB, APPROVALS, ts, call.args, "autorepay_approve",
                                     slack.response_url(f"click{i}"))
                started = time.perf_counter()
                await signed_post(client, port, form_payload(click))
                reply = await asyncio.to_thread(slack.wait_for, partial(thread_of, slack, ts))
                durations.append((reply[0].at - started) * 1000)
                await asyncio.sleep(0.5)  # stay under 5 writes / 2 s: the limiter never waits
    finally:
        okx.latency = 0.0
        stop(bot)
    return durations


async def posted_after(slack: FakeSlack, client: httpx.AsyncClient, port: int,
                       text: str, timeout: float = 10.0) -> Call:
    """Send the command; the approval message it made the bot post."""
    before = len(slack.posted(APPROVALS))
    await signed_post(client, port, command(slack, text))
    posts = await asyncio.to_thread(
        slack.wait_for, lambda: len(p := slack.posted(APPROVALS)) > before and p, timeout)
    return next(c for c in slack.called("chat.postMessage") if c.args is posts[-1])


def thread_of(slack: FakeSlack, ts: str) -> list[Call]:
    return [c for c in slack.called("chat.postMessage") if c.args.get("thread_ts") == ts]


# --- 3. burst of 20 writes ----------------------------------------------------------------
async def burst(okx: FakeOkx) -> tuple[float, int]:
    """On an account of its own: the bot's writes above must not share its window."""
    okx.latency = 0.050
    okx.add_account(api_key=BURST.api_key, secret=BURST.secret, passphrase=BURST.passphrase,
                    uid="770000000077")
    before = okx.codes(SET_AUTO_REPAY).count("50011")
    async with OkxClient(BURST, base_url=okx.url) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client.set_auto_repay(i % 2 == 0) for i in range(20)))
        elapsed = time.perf_counter() - started
    okx.latency = 0.0
    return elapsed, okx.codes(SET_AUTO_REPAY).count("50011") - before


# --- 4. start-up and memory ----------------------------------------------------------------
async def startup_and_memory(slack: FakeSlack, okx: FakeOkx, tmp: Path
                             ) -> tuple[list[float], list[tuple[int, float]]]:
    startups = []
    for i in range(5):
        port = free_port()
        process = spawn("bot", ["--http"], bot_env(slack, okx, port, tmp / f"start{i}.db"))
        startups.append(wait_ready(port))
        stop(process)
    port = free_port()
    # On the database of the last start (migrated, as day to day): a first start after
    # an upgrade also loads the migrations (alembic, about 8 MB more).
    process = spawn("bot", ["--http"], bot_env(slack, okx, port, tmp / "start4.db"))
    wait_ready(port)
    mix = [("help", ALICE), ("status", BOB), ("demo status", ALICE), ("on", ALICE),
           ("off", ALICE), ("demo on", ALICE), ("on please", ALICE), ("status", MALLORY),
           ("", BOB), ("demo", BOB)]
    memory = [(0, rss_mb(process.pid))]
    try:
        async with httpx.AsyncClient() as client:
            for sent in range(0, COMMANDS, 100):
                await asyncio.gather(*(
                    signed_post(client, port, command(slack, *mix[(sent + n) % len(mix)]))
                    for n in range(100)))
                await asyncio.sleep(0.3)  # let the work after each ack finish
                memory.append((sent + 100, rss_mb(process.pid)))
    finally:
        stop(process)
    return startups, memory


# --- 5. click → start of the OKX write ----------------------------------------------------
class TimedOkx(FakeOkx):
    """FakeOkx that also notes when each request arrives on time.perf_counter, the
    bench's clock: `Recorded.arrived` is OKX's wall clock (time.time() + clock_offset),
    which can't be subtracted from perf_counter readings."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arrivals: list[tuple[str, str, float]] = []  # method, path, perf_counter

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # first thing on arrival, before the body is read or any check is made
        self._record((request.method, request.path, time.perf_counter()), self.arrivals)
        return await super()._handle(request)


AFTER_CLICK = ("chat.update", "chat.postMessage", "chat.postEphemeral")
HANG_MODES = {
    "answering": "Slack answering",
    "held": "Slack hanging after each click until its request is done (then answered)",
    "stalled": "Slack hanging after every click, never answering (calls time out in 10 s)",
}
SAMPLE_SECONDS = 15.0  # a step taking longer ends a case: more than a Slack call's 10 s
POST_SECONDS, CASE_SECONDS = 30.0, 120.0  # the same for an approval message; for a case


def after_click(method: str, args: dict[str, Any]) -> bool:
    """The Web API calls the bot makes after a click: the approval message's updates,
    the thread reply, the note to the requester. Not the approval message itself."""
    return method != "chat.postMessage" or "thread_ts" in args


def request_status(db: Path, request_id: str) -> str:
    """The request's status in the bot's database, read as another process would."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT status FROM requests WHERE id = ?", (request_id,)).fetchone()
    return str(row[0]) if row else ""


async def final_status(db: Path, request_id: str, timeout: float) -> str:
    deadline = time.perf_counter() + timeout
    while (status := request_status(db, request_id)) in ("pending", "approved", ""):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"request still {status!r} after {timeout:.0f} s")
        await asyncio.sleep(0.01)
    return status


def first_write(okx: TimedOkx, before: int) -> float | None:
    return next((at for method, path, at in okx.arrivals[before:]
                 if method == "POST" and path == SET_AUTO_REPAY), None)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def diagnose(port: int, pid: int) -> str:
    """After a step timed out: does the bot still answer, and is it busy?"""
    before = cpu_seconds(pid)
    await asyncio.sleep(1.0)
    busy = cpu_seconds(pid) - before
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            health = f"answered {(await client.get(f'http://127.0.0.1:{port}/healthz')).status_code}"
    except httpx.HTTPError as exc:
        health = f"no answer ({type(exc).__name__})"
    return (f"/healthz {health}; the bot used {busy * 100:.0f} % of a core over 1 s with "
            "nothing sent to it")


async def click_to_write(slack: FakeSlack, okx: TimedOkx, tmp: Path, *, mode: str,
                         writes: int) -> dict[str, Any]:
    """Milliseconds from sending a signed Approve click to OKX receiving the write, one
    request per click, alternating the live and the demo account; the next request is
    made once the last one is done or failed in the database.

    mode "answering": Slack answers. "held": from the moment the approval message is
    recorded until the request is done, the Web API methods called after a click hang,
    and are answered when released (FakeSlack.hold). "stalled": every call made after a
    click hangs unanswered (FakeSlack.stall, for the whole case): the bot's client gives
    up after 10 s and the jobs are retried, into Slack hanging again."""
    port, db = free_port(), tmp / f"write-{mode}.db"
    bot = spawn("bot", ["--http"], bot_env(slack, okx, port, db))
    wait_ready(port)
    if mode == "stalled":
        for method in AFTER_CLICK:
            slack.stall(method, partial(after_click, method))
    out: dict[str, Any] = {"ms": [], "posted_ms": [], "statuses": [], "ended": ""}
    codes_before, last_click = len(okx.codes(SET_AUTO_REPAY)), 0.0
    stalled_before, held_before = hanging(slack), len(slack.held)
    step, case_started = "starting", time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=SAMPLE_SECONDS) as client:
            for i in range(WARMUP + writes):
                if time.perf_counter() - case_started > CASE_SECONDS:
                    out["ended"] = (f"ended after {i} clicks: over {CASE_SECONDS:.0f} s; "
                                    + await diagnose(port, bot.pid))
                    break
                creds, prefix = (LIVE, "") if i % 2 == 0 else (DEMO, "demo ")
                text = prefix + ("off" if okx.accounts[creds.api_key].auto_repay else "on")
                step = f"request {i + 1}: the approval message"
                asked = time.perf_counter()
                call = await posted_after(slack, client, port, text, POST_SECONDS)
                posted = time.perf_counter() - asked
                ts = str(call.answer["ts"])
                click = block_action(BOB, APPROVALS, ts, call.args, "autorepay_approve",
                                     slack.response_url(f"write-{mode}-{i}"))
                request_id = str(click["actions"][0]["value"])
                if mode == "held":
                    for method in AFTER_CLICK:
                        slack.hold(method)
                # writes share one uid: at most 5 / 2 s, so the limiter never waits
                await asyncio.sleep(max(0.0, last_click + 0.45 - time.perf_counter()))
                before = len(okx.arrivals)
                step = f"click {i + 1}: its ack"
                started = last_click = time.perf_counter()
                await signed_post(client, port, form_payload(click))
                step = f"click {i + 1}: its OKX write"
                arrived = await asyncio.to_thread(
                    okx.wait_for, partial(first_write, okx, before), SAMPLE_SECONDS)
                step = f"click {i + 1}: its request's final state"
                status = await final_status(db, request_id, SAMPLE_SECONDS)
                slack.release()
                if i >= WARMUP:
                    out["ms"].append((arrived - started) * 1000)
                    out["posted_ms"].append(posted * 1000)
                    out["statuses"].append(status)
    except (AssertionError, TimeoutError, httpx.TimeoutException):
        limit = POST_SECONDS if "approval message" in step else SAMPLE_SECONDS
        out["ended"] = (f"ended at {step}: nothing within {limit:.0f} s; "
                        + await diagnose(port, bot.pid))
    finally:
        out["codes"] = okx.codes(SET_AUTO_REPAY)[codes_before:]
        out["stalled"] = hanging(slack) - stalled_before
        out["held"] = len(slack.held) - held_before
        slack.unstall(), slack.release()
        stop(bot, grace=1.0 if out["ended"] else 20.0)  # a frozen bot ignores SIGTERM
    return out


def hanging(slack: FakeSlack) -> int:
    """Web API calls the stand-in never answered (so far)."""
    return sum(len(slack.stalled(method)) for method in AFTER_CLICK)


# --- report -------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


async def main(figures: set[str], writes: int) -> None:
    slack, okx = FakeSlack(), TimedOkx()
    slack.start(), okx.start()
    for creds, demo in ((LIVE, False), (DEMO, True)):
        okx.add_account(api_key=creds.api_key, secret=creds.secret,
                        passphrase=creds.passphrase, demo=demo)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        acks = await ack_latency(slack, okx, tmp) if "ack" in figures else None
        clicks = await click_to_thread(slack, okx, tmp) if "click" in figures else None
        bursts = await burst(okx) if "burst" in figures else None
        starts = await startup_and_memory(slack, okx, tmp) if "startup" in figures else None
        statuses = None
        if "status" in figures:
            from bench.accounts import status_over_accounts
            statuses = await status_over_accounts(slack, okx, tmp)
        failovers = backend_clicks = None
        if "failover" in figures:
            from bench.replicas import failover
            failovers = await failover(slack, okx, tmp)
        if "backends" in figures:
            from bench.replicas import backends
            backend_clicks = await backends(slack, okx, tmp)
        memory_load = None
        if "memory" in figures:
            from bench.memory import memory_over_requests
            memory_load = await memory_over_requests(okx, tmp)
        drift_load = None
        if "drift" in figures:
            from bench.drift import drift_figures
            drift_load = await drift_figures(slack, tmp)
        cases = None
        if "write" in figures:  # last: Slack calls left hanging end with the stand-in
            cases = {mode: await click_to_write(slack, okx, tmp, mode=mode, writes=writes)
                     for mode in HANG_MODES}
    slack.stop(), okx.stop()

    if acks is not None:
        print(f"\n1. ack latency, {CONCURRENCY} concurrent, {ROUNDS} interleaved rounds "
              "(ms p50 / p95 / p99)")
        for name, values in acks.items():
            print(f"   {name:10} {summary(values)}   (n={len(values)})")
        for text in ("help", "on"):
            ratio = percentile(acks[f"bot {text}"], 95) / percentile(acks[f"bare {text}"], 95)
            print(f"   p95 ratio bot/bare {text:4}: {ratio:.2f}  (goal <= 1.25: "
                  f"{verdict(ratio <= 1.25)})")
    if clicks is not None:
        median = statistics.median(clicks)
        print(f"\n2. click -> thread reply, OKX answering after 100 ms, {len(clicks)} clicks")
        print(f"   median {median:.1f} ms (min {min(clicks):.1f}, max {max(clicks):.1f}); "
              "2 OKX round trips (write + read-back) = 200 ms")
        print(f"   beyond the OKX round trips: {median - 200:.1f} ms  (goal <= 25 ms: "
              f"{verdict(median - 200 <= 25)})")
    if bursts is not None:
        burst_seconds, rate_limited = bursts
        print(f"\n3. burst of 20 OKX writes: {burst_seconds:.2f} s, {rate_limited} x 50011  "
              f"(goal <= 6.9 s and 0: {verdict(burst_seconds <= 6.9 and rate_limited == 0)})")
    if starts is not None:
        startups, memory = starts
        growth = memory[-1][1] - memory[len(memory) // 2][1]
        print(f"\n4. start-up to /healthz 200: median {statistics.median(startups):.2f} s "
              f"(of {len(startups)}; goal <= 1.5 s: "
              f"{verdict(statistics.median(startups) <= 1.5)})")
        print("   resident memory (MB) after N commands: "
              + ", ".join(f"{n}: {mb:.1f}" for n, mb in memory))
        print(f"   after {COMMANDS}: {memory[-1][1]:.1f} MB (goal <= 100: "
              f"{verdict(memory[-1][1] <= 100)}); growth over the last {COMMANDS // 2}: "
              f"{growth:+.1f} MB")
    if cases is not None:
        report_writes(cases, writes)
    if statuses is not None:
        from bench.accounts import report_status
        report_status(statuses)
    if failovers is not None:
        from bench.replicas import report_failover
        report_failover(failovers)
    if backend_clicks is not None:
        from bench.replicas import report_backends
        report_backends(backend_clicks)
    if memory_load is not None:
        from bench.memory import report_memory
        report_memory(memory_load)
    if drift_load is not None:
        from bench.drift import report_drift
        report_drift(drift_load)
    print(f"\n(bench ran {time.perf_counter() - started:.0f} s)")


def report_writes(cases: dict[str, dict[str, Any]], writes: int) -> None:
    print(f"\n5. click -> start of the OKX write (OKX receives POST set-auto-repay), one "
          f"request per click, live/demo alternating, {WARMUP} unmeasured first "
          "(ms p50 / p95 / p99, max)")
    for mode, case in cases.items():
        ms, posted = case["ms"], case["posted_ms"]
        print(f"   {HANG_MODES[mode]}:")
        if ms:
            p50, p95 = percentile(ms, 50), percentile(ms, 95)
            print(f"      {summary(ms)}, max {max(ms):.1f}   (n={len(ms)} of {writes}; "
                  f"goal p50 and p95 < 50 ms: {verdict(p50 < 50 and p95 < 50)})")
            print(f"      command -> approval message posted: p50 {percentile(posted, 50):.0f}"
                  f" ms, max {max(posted):.0f} ms (the command's config read included, under"
                  " OKX's 5 / 2 s)")
            print("      in click order: " + " ".join(f"{v:.0f}" for v in ms))
        counts = {s: case["statuses"].count(s) for s in sorted(set(case["statuses"]))}
        codes = {c: case["codes"].count(c) for c in sorted(set(case["codes"]))}
        print(f"      requests ended {counts}; OKX write codes {codes}; Web API calls "
              f"held then answered: {case['held']}, never answered: {case['stalled']}")
        if case["ended"]:
            print(f"      {case['ended']}")
    base = cases["answering"]["ms"]
    for mode in ("held", "stalled"):
        ms = cases[mode]["ms"]
        if base and ms:
            ratio = percentile(ms, 95) / percentile(base, 95)
            complete = len(ms) == writes
            print(f"   p95 ratio {mode}/answering: {ratio:.2f}  (goal about the same, <= 1.25,"
                  f" over all {writes}: {verdict(ratio <= 1.25 and complete)})")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", metavar="FIGURE",
                        help=f"only these ({', '.join(FIGURES)}); default: all")
    parser.add_argument("--writes", type=int, default=WRITES,
                        help=f"measured clicks per case in figure 5 (default {WRITES})")
    args = parser.parse_args()
    if unknown := set(args.figures) - set(FIGURES):
        parser.error(f"no such figure: {', '.join(sorted(unknown))} (choose from "
                     f"{', '.join(FIGURES)})")
    return args


if __name__ == "__main__":
    args = arguments()
    asyncio.run(main(set(args.figures or FIGURES), args.writes))
