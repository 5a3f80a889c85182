"""Figures 7 and 8 (`python -m bench failover backends`): replicas on PostgreSQL.

7. failover: two replicas (`python -m bot --http`, each a process of its own) share one
   PostgreSQL database. A command goes to one, the Approve click to the other, whose
   click claims the OKX job itself; OKX holds that write for 2 s, and as soon as OKX
   has received it the replica running it is SIGKILLed. Measured: from the SIGKILL to
   the thread reply reaching Slack (the other replica took the job over once its lease
   ran out, wrote again, read back, replied), and to the takeover's write reaching OKX;
   also how much of the lease was left at the kill (read from the job table). Killing
   right after the click is the worst case: the job was claimed a moment before, so
   nearly the whole lease is left. 5 runs with the default lease (15 s), 5 with 5 s (the
   minimum); the killed replica is started again between runs.
8. backends: click -> thread reply, OKX answering every request after 100 ms (so 200 ms
   of each figure are the write and the read-back), the same run, interleaved round by
   round: SQLite (one process), PostgreSQL with one replica, PostgreSQL with two
   replicas (command to one, click to the other, alternating). Each target has its own
   OKX account (its own key and uid); 2 unmeasured rounds first, then 15 clicks each.

PostgreSQL is a private throwaway server (tests.pg.PostgresServer: Debian's
postgresql package; fsync and synchronous_commit off, as in the tests), on loopback
like everything else. SQLite keeps its defaults (WAL, synchronous=FULL).
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.__main__ import (
    ALICE,
    APPROVALS,
    BOB,
    OPS,
    TimedOkx,
    bot_env,
    free_port,
    percentile,
    spawn,
    stop,
    verdict,
    wait_ready,
)
from bench.__main__ import SIGNING as SIGNING_SECRET
from okx import Credentials
from tests.fakes.okx_server import SET_AUTO_REPAY
from tests.fakes.slack_requests import block_action, form_payload, signed_headers, slash_command
from tests.fakes.slack_server import Call, FakeSlack
from tests.pg import PostgresServer

RUNS = 5  # failover runs per lease
LEASES = (15, 5)  # AUTOREPAY_LEASE_SECONDS: the default, then the minimum
HOLD = 2.0  # seconds OKX holds the write the killed replica made
CLICKS, WARMUP = 15, 2  # figure 8: measured clicks per target, and unmeasured rounds
LATENCY = 0.100  # figure 8: seconds before OKX answers each request
PACE = 0.3  # seconds between two clicks (each target has its own uid and 5 / 2 s)
KEYS = {name: Credentials(f"bench-{name}-key", f"bench-{name}-secret", f"bench-{name}-pass")
        for name in ("failover", "sqlite", "pg1", "pg2")}
UIDS = {"failover": "610000000001", "sqlite": "610000000002", "pg1": "610000000003",
        "pg2": "610000000004"}


# --- processes ------------------------------------------------------------------------------
@dataclass
class Bot:
    """One `python -m bot --http` process."""

    port: int
    process: subprocess.Popen[bytes]

    def post(self, body: str) -> httpx.Response:
        response = httpx.post(f"http://127.0.0.1:{self.port}/slack/events", content=body,
                              headers=signed_headers(SIGNING_SECRET, body), timeout=10)
        response.raise_for_status()
        return response

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def env_for(slack: FakeSlack, okx: TimedOkx, port: int, key: str, *,
            url: str = "", db: Path | None = None, lease: int | None = None
            ) -> dict[str, str]:
    """bench's bot_env with the live account's key `key`, on PostgreSQL at `url` or the
    SQLite file `db`."""
    env = bot_env(slack, okx, port, db or Path("unused.db"))
    creds = KEYS[key]
    env |= {"OKX_API_KEY": creds.api_key, "OKX_API_SECRET": creds.secret,
            "OKX_API_PASSPHRASE": creds.passphrase}
    if url:
        del env["AUTOREPAY_DB"]
        env["AUTOREPAY_DATABASE_URL"] = url
    if lease is not None:
        env["AUTOREPAY_LEASE_SECONDS"] = str(lease)
    return env


def start(envs: list[Callable[[int], dict[str, str]]]) -> list[Bot]:
    """Processes launched at the same moment, each waited for until /healthz is 200."""
    bots = []
    for make_env in envs:
        port = free_port()
        bots.append(Bot(port, spawn("bot", ["--http"], make_env(port))))
    for bot in bots:
        wait_ready(bot.port)
    return bots


def stop_all(bots: list[Bot]) -> None:
    for bot in bots:
        if bot.process.poll() is None:
            stop(bot.process)


def add_account(okx: TimedOkx, key: str) -> None:
    creds = KEYS[key]
    if creds.api_key not in okx.accounts:
        okx.add_account(api_key=creds.api_key, secret=creds.secret,
                        passphrase=creds.passphrase, uid=UIDS[key], label=f"bench-{key}")


# --- acting as Slack ------------------------------------------------------------------------
def request_change(slack: FakeSlack, bot: Bot, okx: TimedOkx, key: str, name: str
                   ) -> Call:
    """The command on `bot` (ON or OFF, whichever changes the account); the approval
    message it posted, once the command's reply came (by then its ts is recorded)."""
    text = "off" if okx.accounts[KEYS[key].api_key].auto_repay else "on"
    before = len(slack.posted(APPROVALS))
    bot.post(slash_command(text, ALICE, OPS, slack.response_url(name)))
    slack.wait_for(lambda: len(slack.posted(APPROVALS)) > before, timeout=30)
    call = [c for c in slack.called("chat.postMessage")
            if c.args.get("channel") == APPROVALS and "thread_ts" not in c.args][before]
    slack.wait_for(lambda: slack.responses_to(name), timeout=30)
    return call


def click(slack: FakeSlack, bot: Bot, call: Call, name: str) -> float:
    """Approve, on `bot`; perf_counter when the click was sent."""
    body = form_payload(block_action(BOB, APPROVALS, str(call.answer["ts"]), call.args,
                                     "autorepay_approve", slack.response_url(name)))
    sent = time.perf_counter()
    bot.post(body)
    return sent


def thread_reply(slack: FakeSlack, ts: str, timeout: float) -> Call:
    calls = slack.wait_for(lambda: [c for c in slack.called("chat.postMessage")
                                    if c.args.get("thread_ts") == ts], timeout=timeout)
    return calls[0]  # type: ignore[no-any-return]


def writes_since(okx: TimedOkx, before: int) -> list[float]:
    """When each write arrived (perf_counter) after the first `before` arrivals."""
    return [at for method, path, at in okx.arrivals[before:]
            if method == "POST" and path == SET_AUTO_REPAY]


def received_since(okx: TimedOkx, before: int) -> bool:
    """Whether OKX has read a whole write after its first `before` requests."""
    return any(r.method == "POST" and r.path == SET_AUTO_REPAY for r in okx.requests[before:])


# --- the database ---------------------------------------------------------------------------
def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def settled(url: str, ts: str) -> bool:
    """The request of approval message `ts` is decided and all its jobs have ended."""
    rows = query(url, "SELECT r.status, (SELECT count(*) FROM jobs j WHERE"
                 " j.request_id = r.id AND j.done_at IS NULL) FROM requests r"
                 " WHERE r.approval_ts = %s", ts)
    return bool(rows) and rows[0][0] not in ("pending", "approved") and rows[0][1] == 0


def until(check: Callable[[], object], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the bot did not get there in time")
        time.sleep(0.02)


# --- 7. failover ----------------------------------------------------------------------------
def failover_runs(slack: FakeSlack, okx: TimedOkx, server: PostgresServer, lease: int,
                  runs: int) -> dict[str, Any]:
    add_account(okx, "failover")
    url = server.new_database()

    def make_env(port: int) -> dict[str, str]:
        return env_for(slack, okx, port, "failover", url=url, lease=lease)

    bots = start([make_env, make_env])
    out: dict[str, Any] = {"reply": [], "write": [], "left": [], "writes": [], "texts": []}
    try:
        for run in range(runs):
            clicker, other = bots[run % 2], bots[1 - run % 2]
            call = request_change(slack, other, okx, "failover", f"fo{lease}-{run}")
            ts = str(call.answer["ts"])
            okx.fail_next("slow", seconds=HOLD, path=SET_AUTO_REPAY)
            before, received_before = len(okx.arrivals), len(okx.requests)
            click(slack, clicker, call, f"fo{lease}-{run}-click")
            # Received whole (and held): not merely arriving, or the kill could cut off
            # its body and leave the hold to the takeover's write.
            okx.wait_for(partial(received_since, okx, received_before), timeout=10)
            clicker.kill()
            killed = time.perf_counter()
            [(lease_until,)] = query(url, "SELECT j.lease_until FROM jobs j JOIN requests r"
                                     " ON r.id = j.request_id WHERE r.approval_ts = %s"
                                     " AND j.kind = 'okx_apply'", ts)
            left = lease_until - time.time()
            reply = thread_reply(slack, ts, timeout=lease + 30)
            until(partial(settled, url, ts), timeout=30)
            made = writes_since(okx, before)
            out["reply"].append(reply.at - killed)
            out["write"].append(made[-1] - killed)
            out["left"].append(left)
            out["writes"].append(len(made))
            out["texts"].append(str(reply.args.get("text", "")))
            bots[run % 2] = start([make_env])[0]  # the killed replica comes back
    finally:
        stop_all(bots)
    return out


async def failover(slack: FakeSlack, okx: TimedOkx, tmp: Path, runs: int = RUNS
                   ) -> dict[int, dict[str, Any]]:
    def measure() -> dict[int, dict[str, Any]]:
        with PostgresServer() as server:
            return {lease: failover_runs(slack, okx, server, lease, runs) for lease in LEASES}
    return await asyncio.to_thread(measure)


def report_failover(results: dict[int, dict[str, Any]]) -> None:
    print(f"\n7. failover: SIGKILL of the replica running the OKX write (OKX holding it "
          f"{HOLD:.0f} s; killed as soon as OKX received it), 2 replicas on PostgreSQL, "
          f"{len(next(iter(results.values()))['reply'])} runs per lease")
    for lease, out in results.items():
        if not out["reply"]:
            print(f"   lease {lease} s: no measurement")
            continue
        reply, write, left = out["reply"], out["write"], out["left"]
        name = f"lease {lease} s" + (" (default)" if lease == 15 else "")
        print(f"   {name}: kill -> thread reply median {statistics.median(reply):.2f} s "
              f"(min {min(reply):.2f}, max {max(reply):.2f}); kill -> the other replica's "
              f"write at OKX median {statistics.median(write):.2f} s")
        print(f"      lease left at the kill: median {statistics.median(left):.2f} s; beyond "
              f"it, to the thread reply: median "
              f"{statistics.median([r - lt for r, lt in zip(reply, left, strict=True)]):.2f} s")
        writes = sorted(set(out["writes"]))
        resumed = sum("Resumed" in text for text in out["texts"])
        print(f"      OKX writes per change: {writes} (the cut-off one and the takeover's); "
              f"thread replies saying 'Resumed': {resumed} of {len(reply)}")
        print("      in run order: " + " ".join(f"{r:.2f}" for r in reply))
        print(f"      goal (SPEC §10: another replica finishes the work within the lease): "
              f"{verdict(max(reply) <= lease)} (max {max(reply):.2f} s of {lease} s); "
              f"taken over (its write at OKX) within the lease: "
              f"{verdict(max(write) <= lease)} (max {max(write):.2f} s)")


# --- 8. click -> thread reply per backend -----------------------------------------------------
@dataclass
class Target:
    name: str
    key: str  # its OKX account
    bots: list[Bot]
    url: str = ""  # PostgreSQL

    def pick(self, n: int) -> tuple[Bot, Bot]:
        """(where the command goes, where the click goes) for round n."""
        if len(self.bots) == 1:
            return self.bots[0], self.bots[0]
        return self.bots[n % 2], self.bots[1 - n % 2]


def backend_rounds(slack: FakeSlack, okx: TimedOkx, tmp: Path, server: PostgresServer,
                   clicks: int) -> dict[str, list[float]]:
    for key in ("sqlite", "pg1", "pg2"):
        add_account(okx, key)
    pg1, pg2 = server.new_database(), server.new_database()
    targets = [
        Target("SQLite, 1 process", "sqlite", start([
            lambda port: env_for(slack, okx, port, "sqlite", db=tmp / "backends.db")])),
        Target("PostgreSQL, 1 replica", "pg1", start([
            lambda port: env_for(slack, okx, port, "pg1", url=pg1)]), pg1),
        Target("PostgreSQL, 2 replicas", "pg2", start([
            lambda port: env_for(slack, okx, port, "pg2", url=pg2)] * 2), pg2),
    ]
    samples: dict[str, list[float]] = {target.name: [] for target in targets}
    okx.latency = LATENCY
    try:
        for n in range(WARMUP + clicks):
            order = targets[n % len(targets):] + targets[:n % len(targets)]  # interleaved
            for target in order:
                to_command, to_click = target.pick(n)
                name = f"be-{target.key}-{n}"
                call = request_change(slack, to_command, okx, target.key, name)
                sent = click(slack, to_click, call, name + "-click")
                reply = thread_reply(slack, str(call.answer["ts"]), timeout=30)
                if n >= WARMUP:
                    samples[target.name].append((reply.at - sent) * 1000)
                time.sleep(PACE)  # the rest of its announcements, out of the next one's way
    finally:
        okx.latency = 0.0
        for target in targets:
            stop_all(target.bots)
    return samples


async def backends(slack: FakeSlack, okx: TimedOkx, tmp: Path, clicks: int = CLICKS
                   ) -> dict[str, list[float]]:
    def measure() -> dict[str, list[float]]:
        with PostgresServer() as server:
            return backend_rounds(slack, okx, tmp, server, clicks)
    return await asyncio.to_thread(measure)


def report_backends(samples: dict[str, list[float]]) -> None:
    round_trips = 2 * LATENCY * 1000
    print(f"\n8. click -> thread reply per backend, OKX answering after {LATENCY * 1000:.0f} ms "
          f"(write + read-back = {round_trips:.0f} ms), interleaved rounds, {WARMUP} "
          "unmeasured first (ms)")
    for name, ms in samples.items():
        if not ms:
            print(f"   {name:24} no measurement")
            continue
        median = statistics.median(ms)
        print(f"   {name:24} median {median:6.1f}, p95 {percentile(ms, 95):6.1f} (min "
              f"{min(ms):.1f}, max {max(ms):.1f}, n={len(ms)}); beyond the round trips: "
              f"{median - round_trips:.1f}")
    sqlite = samples.get("SQLite, 1 process") or []
    for name, ms in samples.items():
        if name.startswith("PostgreSQL") and ms and sqlite:
            median = statistics.median(ms) / statistics.median(sqlite)
            print(f"   {name} / SQLite: median {median:.2f}, p95 "
                  f"{percentile(ms, 95) / percentile(sqlite, 95):.2f}")
