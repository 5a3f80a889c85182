"""Figure 6 (`python -m bench status`): `/autorepay status` over 10 named accounts.

The bot (a process of its own, HTTP mode) has 10 accounts, each with its own key and
OKX uid on the loopback OKX server, which answers every request after 100 ms. One
command reads all ten; it should answer once, in about one OKX round trip (the reads
are made at the same time), not ten.

Measured, per command: from sending the signed POST to the follow-up's arrival on the
command's response_url (the ack comes at once; the answer comes there). The commands go
one after another, 0.5 s apart: OKX allows 5 account/config reads / 2 s per uid, so the
bot's limiter never has to wait and only the fan-out is measured.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.__main__ import (
    ALICE,
    OPS,
    bot_env,
    free_port,
    percentile,
    signed_post,
    spawn,
    stop,
    verdict,
    wait_ready,
)
from okx import Credentials
from tests.fakes.okx_server import CONFIG, FakeOkx
from tests.fakes.slack_requests import slash_command
from tests.fakes.slack_server import FakeSlack

ACCOUNTS = 10
COMMANDS, WARMUP = 20, 2  # measured commands, and unmeasured ones first
LATENCY = 0.100  # seconds before the loopback OKX answers
PACE = 0.5  # seconds between commands: under 5 reads / 2 s per uid
KEYS = {f"acct-{n:02d}": Credentials(f"bench-acct-{n:02d}-key", f"bench-acct-{n:02d}-secret",
                                     f"bench-acct-{n:02d}-pass")
        for n in range(1, ACCOUNTS + 1)}


def accounts_env(slack: FakeSlack, okx: FakeOkx, port: int, db: Path) -> dict[str, str]:
    """bot_env with the ten accounts instead of live and demo (no OKX_API_* at all)."""
    env = {name: value for name, value in bot_env(slack, okx, port, db).items()
           if not name.startswith("OKX_") or name == "OKX_BASE_URL"}
    env["AUTOREPAY_ACCOUNTS"] = ", ".join(KEYS)
    for name, creds in KEYS.items():
        prefix = "OKX_" + name.upper().replace("-", "_") + "_API_"
        env |= {prefix + "KEY": creds.api_key, prefix + "SECRET": creds.secret,
                prefix + "PASSPHRASE": creds.passphrase}
    return env


async def status_over_accounts(slack: FakeSlack, okx: FakeOkx, tmp: Path,
                               commands: int = COMMANDS) -> dict[str, Any]:
    for n, (name, creds) in enumerate(KEYS.items(), start=1):
        if creds.api_key not in okx.accounts:
            okx.add_account(api_key=creds.api_key, secret=creds.secret,
                            passphrase=creds.passphrase, uid=f"5100000000{n:02d}",
                            label=name, auto_repay=n % 2 == 0)
    port = free_port()
    bot = spawn("bot", ["--http"], accounts_env(slack, okx, port, tmp / "status.db"))
    out: dict[str, Any] = {"ms": [], "ack_ms": [], "replies": [], "reads": [], "lines": []}
    try:
        wait_ready(port)  # the start-up check has read every account once by now
        okx.latency = LATENCY
        async with httpx.AsyncClient(timeout=10.0) as client:
            for i in range(WARMUP + commands):
                name = f"status{i}"
                body = slash_command("status", ALICE, OPS, slack.response_url(name))
                reads_before = count_reads(okx)
                started = time.perf_counter()
                ack_ms = await signed_post(client, port, body)
                arrived = await asyncio.to_thread(slack.wait_for, partial(answered, slack, name))
                await asyncio.sleep(PACE)  # a second answer would have come by now
                if i < WARMUP:
                    continue
                replies = slack.responses_to(name)
                out["ms"].append((arrived - started) * 1000)
                out["ack_ms"].append(ack_ms)
                out["replies"].append(len(replies))
                out["reads"].append(count_reads(okx) - reads_before)
                out["lines"].append(str(replies[0].get("text", "")).count(": auto repay *"))
    finally:
        okx.latency = 0.0
        stop(bot)
    return out


def answered(slack: FakeSlack, name: str) -> float | None:
    """When the follow-up for `name` is seen (checked as soon as it is recorded)."""
    return time.perf_counter() if slack.responses_to(name) else None


def count_reads(okx: FakeOkx) -> int:
    return sum(1 for r in okx.requests if r.path.split("?")[0] == CONFIG)


def report_status(out: dict[str, Any]) -> None:
    ms = out["ms"]
    round_trip = LATENCY * 1000
    print(f"\n6. status over {ACCOUNTS} accounts, OKX answering after {round_trip:.0f} ms, "
          f"{len(ms)} commands one after another ({WARMUP} unmeasured first)")
    if not ms:
        print("   no measurement")
        return
    median, p95 = statistics.median(ms), percentile(ms, 95)
    print(f"   signed POST -> follow-up on response_url: median {median:.1f} ms, p95 "
          f"{p95:.1f} ms (min {min(ms):.1f}, max {max(ms):.1f}); ack median "
          f"{statistics.median(out['ack_ms']):.1f} ms")
    print(f"   median / one {round_trip:.0f} ms round trip: {median / round_trip:.2f} "
          f"(p95: {p95 / round_trip:.2f}); {ACCOUNTS} reads one after another would be "
          f">= {ACCOUNTS * round_trip:.0f} ms")
    replies, lines, reads = set(out["replies"]), set(out["lines"]), set(out["reads"])
    print(f"   replies per command: {sorted(replies)}; account lines per reply: "
          f"{sorted(lines)}; OKX reads per command: {sorted(reads)}")
    whole = replies == {1} and lines == {ACCOUNTS} and reads == {ACCOUNTS}
    print(f"   goal: one reply listing all {ACCOUNTS}, median < {2 * round_trip:.0f} ms "
          f"(2 round trips): {verdict(median < 2 * round_trip and whole)}")
