"""Figure 9 (`python -m bench memory`): resident memory over 10 000 mixed commands and
clicks.

The bot (`python -m bot --http`, a process of its own) has 20 accounts, each with its
own key and OKX uid on the loopback OKX server, so OKX's 5 requests / 2 s per uid and
endpoint are 20 budgets, not one. One worker per account runs cycles, one request after
another (each command's answer on its response_url is waited for before the next):

    on|off ACCOUNT (a new request)   Approve by a stranger (refused)
    Approve by the requester (self-approval refused)   pending   history   help
    status ACCOUNT   status by a stranger (refused)   the same on|off again (duplicate)
    the end of the request: Deny (3 cycles in 5), cancel (1 in 5) or Approve (1 in 5:
    the OKX write and read-back, waited for until its thread reply)
    Deny again and Approve again (the request is over: "already denied", …)

Measured: VmRSS of the bot process (/proc/PID/status) before the first request and after
every 1 000; reported: start, peak, end, and the slope over the second half (least
squares, MB per 1 000 requests). Goal: flat, under 100 MB.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.__main__ import (
    ALICE,
    APPROVALS,
    BOB,
    MALLORY,
    OPS,
    SIGNING,
    bot_env,
    free_port,
    rss_mb,
    spawn,
    stop,
    verdict,
    wait_ready,
)
from bot.store import Store
from okx import Credentials
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_requests import block_action, form_payload, signed_headers, slash_command
from tests.fakes.slack_server import Call, FakeSlack

ACCOUNTS = 20
REQUESTS, SAMPLE_EVERY = 10_000, 1_000
GOAL_MB = 100.0
STEP_SECONDS = 30.0  # a step taking longer ends the run (and says where)
KEYS = {f"mem-{n:02d}": Credentials(f"bench-mem-{n:02d}-key", f"bench-mem-{n:02d}-secret",
                                    f"bench-mem-{n:02d}-pass")
        for n in range(1, ACCOUNTS + 1)}
REQUEST_ID = re.compile(r"`(ar-[0-9a-f]{8})`")


class IndexedSlack(FakeSlack):
    """The Slack stand-in, with what the load needs found by key instead of by scanning
    every call made so far: command answers by name, approval messages by request ID,
    threads by ts."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.answers: dict[str, dict[str, Any]] = {}
        self.approvals: dict[str, Call] = {}
        self.threads: set[str] = set()

    def _record(self, item: Any, into: list[Any]) -> None:
        super()._record(item, into)
        if into is self.responses:
            self.answers[item[0]] = item[1]
        elif into is self.calls and item.method == "chat.postMessage" and item.answer.get("ok"):
            if "thread_ts" in item.args:
                self.threads.add(str(item.args["thread_ts"]))
            elif isinstance(metadata := item.args.get("metadata"), dict):
                request_id = (metadata.get("event_payload") or {}).get("request_id")
                if request_id:
                    self.approvals[str(request_id)] = item


@dataclass
class Load:
    """The requests sent so far (at most REQUESTS), with RSS every SAMPLE_EVERY."""

    pid: int
    port: int
    client: httpx.AsyncClient
    slack: IndexedSlack
    sent: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[int, float]] = field(default_factory=list)
    names: int = 0

    @property
    def done(self) -> bool:
        return self.sent >= REQUESTS

    async def post(self, kind: str, body: str) -> bool:
        """Send one signed request; False (nothing sent) once the budget is spent."""
        if self.done:
            return False
        self.sent += 1
        number = self.sent
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        response = await self.client.post(f"http://127.0.0.1:{self.port}/slack/events",
                                          content=body, headers=signed_headers(SIGNING, body))
        response.raise_for_status()
        if number % SAMPLE_EVERY == 0:  # (once it is answered)
            self.samples.append((number, rss_mb(self.pid)))
        return True

    async def command(self, kind: str, text: str, user: str = ALICE) -> str | None:
        """A command, and its answer's text once it came (None: budget spent)."""
        self.names += 1
        name = f"m{self.names}"
        if not await self.post(kind, slash_command(text, user, OPS,
                                                   self.slack.response_url(name))):
            return None
        if kind == "help":  # answered in the ack itself
            return ""
        await until(lambda: name in self.slack.answers, f"the answer to {text!r}")
        return str(self.slack.answers.pop(name).get("text", ""))

    async def click(self, kind: str, user: str, call: Call, action: str) -> bool:
        self.names += 1
        payload = block_action(user, APPROVALS, str(call.answer["ts"]), call.args, action,
                               self.slack.response_url(f"m{self.names}"))
        return await self.post(kind, form_payload(payload))


async def until(check: Any, what: str) -> None:
    deadline = time.perf_counter() + STEP_SECONDS
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no {what} within {STEP_SECONDS:.0f} s")
        await asyncio.sleep(0.005)


async def desk(load: Load, okx: FakeOkx, name: str) -> None:
    """Cycles on one account until the budget is spent."""
    cycle = 0
    while not load.done:
        cycle += 1
        await one_cycle(load, okx, name, cycle)


async def one_cycle(load: Load, okx: FakeOkx, name: str, cycle: int) -> None:
    change = ("off" if okx.accounts[KEYS[name].api_key].auto_repay else "on") + f" {name}"
    answer = await load.command("request", change)
    found = REQUEST_ID.search(answer or "")
    if found is None:
        return
    request_id = found.group(1)
    await until(lambda: request_id in load.slack.approvals, "approval message")
    message = load.slack.approvals[request_id]
    steps = [load.click("refused click", MALLORY, message, "autorepay_approve"),
             load.click("self-approval", ALICE, message, "autorepay_approve"),
             load.command("pending", "pending"), load.command("history", "history", BOB),
             load.command("help", "help"), load.command("status", f"status {name}", BOB),
             load.command("refused command", "status", MALLORY),
             load.command("duplicate request", change)]
    try:
        for step in steps:
            if await step is None or load.done:
                return
    finally:
        close_all(steps)
    await end_request(load, message, request_id, cycle)
    await load.click("duplicate click", BOB, message, "autorepay_deny")
    await load.click("duplicate click", BOB, message, "autorepay_approve")


def close_all(steps: list[Any]) -> None:
    """Close the steps' coroutines never awaited (budget spent, or a step failed)."""
    for step in steps:
        step.close()


async def end_request(load: Load, message: Call, request_id: str, cycle: int) -> None:
    if cycle % 5 == 0:
        if await load.click("approve", BOB, message, "autorepay_approve"):
            ts = str(message.answer["ts"])
            await until(lambda: ts in load.slack.threads, "thread reply after approval")
    elif cycle % 5 == 1:
        await load.command("cancel", f"cancel {request_id}")
    else:
        await load.click("deny", BOB, message, "autorepay_deny")


def accounts_env(slack: FakeSlack, okx: FakeOkx, port: int, db: Path) -> dict[str, str]:
    env = {name: value for name, value in bot_env(slack, okx, port, db).items()
           if not name.startswith("OKX_") or name == "OKX_BASE_URL"}
    env |= {"AUTOREPAY_ACCOUNTS": ", ".join(KEYS), "AUTOREPAY_APPROVERS": f"{BOB},{ALICE}"}
    for name, creds in KEYS.items():
        prefix = "OKX_" + name.upper().replace("-", "_") + "_API_"
        env |= {prefix + "KEY": creds.api_key, prefix + "SECRET": creds.secret,
                prefix + "PASSPHRASE": creds.passphrase}
    return env


async def memory_over_requests(okx: FakeOkx, tmp: Path) -> dict[str, Any]:
    for n, (name, creds) in enumerate(KEYS.items(), start=1):
        if creds.api_key not in okx.accounts:
            okx.add_account(api_key=creds.api_key, secret=creds.secret,
                            passphrase=creds.passphrase, uid=f"8300000000{n:02d}", label=name)
    slack = IndexedSlack()
    slack.start()
    port = free_port()
    db = tmp / "memory-figure.db"
    # A bot restarted on its database, as it runs day to day: the first start after an
    # upgrade also loads the migrations (alembic, about 8 MB more).
    await (await Store.open(db)).aclose()
    bot = spawn("bot", ["--http"], accounts_env(slack, okx, port, db))
    out: dict[str, Any] = {"samples": [], "ended": "", "seconds": 0.0, "kinds": {}}
    try:
        wait_ready(port)
        async with httpx.AsyncClient(timeout=STEP_SECONDS,
                                     limits=httpx.Limits(max_connections=ACCOUNTS)) as client:
            load = Load(bot.pid, port, client, slack, samples=[(0, rss_mb(bot.pid))])
            started = time.perf_counter()
            try:
                await asyncio.gather(*(desk(load, okx, name) for name in KEYS))
            except (TimeoutError, httpx.HTTPError) as exc:
                out["ended"] = f"ended after {load.sent} requests: {exc!r}"
            out["seconds"] = time.perf_counter() - started
            out["samples"], out["kinds"] = sorted(load.samples), load.kinds
    finally:
        stop(bot)
        slack.stop()
    return out


def slope(samples: list[tuple[int, float]]) -> float:
    """MB per 1 000 requests, least squares over the samples given."""
    xs = [n / 1000 for n, _ in samples]
    ys = [mb for _, mb in samples]
    if len(xs) < 2:
        return 0.0
    return statistics.linear_regression(xs, ys).slope


def report_memory(out: dict[str, Any]) -> None:
    samples: list[tuple[int, float]] = out["samples"]
    print(f"\n9. resident memory over {REQUESTS} mixed commands and clicks, {ACCOUNTS} "
          f"accounts ({out['seconds']:.0f} s)")
    print("   VmRSS (MB) after N requests: "
          + ", ".join(f"{n}: {mb:.1f}" for n, mb in samples))
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(out["kinds"].items()))
    print(f"   requests: {kinds}")
    if out["ended"]:
        print(f"   {out['ended']}")
    if len(samples) < 3:
        return
    mbs = [mb for _, mb in samples]
    half = slope(samples[len(samples) // 2:])
    print(f"   start {mbs[0]:.1f} MB, peak {max(mbs):.1f} MB, end {mbs[-1]:.1f} MB; slope over "
          f"the second half {half:+.2f} MB per 1 000 requests")
    flat = abs(half) < 0.5 and max(mbs) < GOAL_MB
    print(f"   goal: flat (|slope| < 0.5 MB / 1 000) and under {GOAL_MB:.0f} MB: "
          f"{verdict(flat and not out['ended'])}")
