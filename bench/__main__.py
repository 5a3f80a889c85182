"""Benchmarks on loopback, one run:  python -m bench  (from the repository root).

1. ack latency of /autorepay help and /autorepay on, 20 concurrent signed requests,
   against a bare Bolt app on the same stack, interleaved rounds
2. click → thread reply with OKX answering after 100 ms
3. a burst of 20 OKX writes through the client
4. start-up to /healthz 200, resident memory over 1 000 mixed commands
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

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
ROUNDS, CONCURRENCY, CLICKS, COMMANDS = 30, 20, 15, 1000


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
            "AUTOREPAY_LOG_LEVEL": "WARNING"}
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


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


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
                       text: str) -> Call:
    """Send the command; the approval message it made the bot post."""
    before = len(slack.posted(APPROVALS))
    await signed_post(client, port, command(slack, text))
    posts = await asyncio.to_thread(
        slack.wait_for, lambda: len(p := slack.posted(APPROVALS)) > before and p)
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
    process = spawn("bot", ["--http"], bot_env(slack, okx, port, tmp / "memory.db"))
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


# --- report -------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


async def main() -> None:
    slack, okx = FakeSlack(), FakeOkx()
    slack.start(), okx.start()
    for creds, demo in ((LIVE, False), (DEMO, True)):
        okx.add_account(api_key=creds.api_key, secret=creds.secret,
                        passphrase=creds.passphrase, demo=demo)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.platform()}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        acks = await ack_latency(slack, okx, tmp)
        clicks = await click_to_thread(slack, okx, tmp)
        burst_seconds, rate_limited = await burst(okx)
        startups, memory = await startup_and_memory(slack, okx, tmp)
    slack.stop(), okx.stop()

    print(f"\n1. ack latency, {CONCURRENCY} concurrent, {ROUNDS} interleaved rounds "
          "(ms p50 / p95 / p99)")
    for name, values in acks.items():
        print(f"   {name:10} {summary(values)}   (n={len(values)})")
    for text in ("help", "on"):
        ratio = percentile(acks[f"bot {text}"], 95) / percentile(acks[f"bare {text}"], 95)
        print(f"   p95 ratio bot/bare {text:4}: {ratio:.2f}  (goal <= 1.25: "
              f"{verdict(ratio <= 1.25)})")
    median = statistics.median(clicks)
    print(f"\n2. click -> thread reply, OKX answering after 100 ms, {len(clicks)} clicks")
    print(f"   median {median:.1f} ms (min {min(clicks):.1f}, max {max(clicks):.1f}); "
          "2 OKX round trips (write + read-back) = 200 ms")
    print(f"   beyond the OKX round trips: {median - 200:.1f} ms  (goal <= 25 ms: "
          f"{verdict(median - 200 <= 25)})")
    print(f"\n3. burst of 20 OKX writes: {burst_seconds:.2f} s, {rate_limited} x 50011  "
          f"(goal <= 6.9 s and 0: {verdict(burst_seconds <= 6.9 and rate_limited == 0)})")
    growth = memory[-1][1] - memory[len(memory) // 2][1]
    print(f"\n4. start-up to /healthz 200: median {statistics.median(startups):.2f} s "
          f"(of {len(startups)}; goal <= 1.5 s: "
          f"{verdict(statistics.median(startups) <= 1.5)})")
    print("   resident memory (MB) after N commands: "
          + ", ".join(f"{n}: {mb:.1f}" for n, mb in memory))
    print(f"   after {COMMANDS}: {memory[-1][1]:.1f} MB (goal <= 100: "
          f"{verdict(memory[-1][1] <= 100)}); growth over the last {COMMANDS // 2}: "
          f"{growth:+.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
