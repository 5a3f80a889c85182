"""SPEC §10: several `python -m bot` replicas on one PostgreSQL database.

Real processes in HTTP mode, each on its own port, sharing one fresh PostgreSQL database,
one Slack stand-in and one loopback OKX server. A command may reach one replica and the
click another; a burst of clicks spread over both decides once; a replica SIGKILLed in
the middle of the OKX write has its job finished by the other once the lease runs out;
replicas started together on an empty database migrate it once; an expiry is announced
once. Every replica logs at DEBUG, and no secret (Slack, OKX, the database password) may
appear in anything it wrote.

(The SQLite side of §10, a second process on the same file refused with exit 2 and let in
after the first is SIGKILLed, is test_lifecycle's
test_a_second_process_on_the_same_database_refuses_to_start.)
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from bot.store import MIGRATIONS
from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, CAROL, OKX_ENV, OPS, SECRETS, SIGNING_SECRET
from tests.bot.process import Lines, bot_env, bot_process, end, free_port, wait_ready
from tests.fakes.okx_server import SET_AUTO_REPAY, FakeOkx
from tests.fakes.slack_requests import (
    block_action,
    find_action,
    form_payload,
    signed_headers,
    slash_command,
)
from tests.fakes.slack_server import Call, FakeSlack
from tests.pg import PostgresServer

OPEN = ("pending", "approved")


# --- replicas -----------------------------------------------------------------------------
@dataclass
class Replica:
    """One `python -m bot --http` process on the shared database."""

    name: str
    port: int
    url: str  # the database
    process: subprocess.Popen[str]
    lines: Lines
    stdout: str = ""

    def post(self, body: str) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.port}/slack/events", content=body,
                          headers=signed_headers(SIGNING_SECRET, body), timeout=10)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines.lines)

    def kill(self) -> None:
        """SIGKILL: no drain, no lease given back."""
        self.process.send_signal(signal.SIGKILL)
        code, self.stdout = end(self.process, self.lines)
        assert code == -signal.SIGKILL

    def stop(self) -> None:
        code, self.stdout = end(self.process, self.lines)
        assert code == 0, self.lines.text


@dataclass
class Replicas:
    """Starts replicas on one database and, at the end, checks what they all wrote."""

    slack: FakeSlack
    okx: FakeOkx
    url: str
    cwd: Path
    started: list[Replica] = field(default_factory=list)

    def start(self, count: int = 2, **env: str) -> list[Replica]:
        """`count` replicas launched at the same moment, each waited for until ready."""
        launched = []
        for _ in range(count):
            port = free_port()
            process = bot_process(["--http"], {
                **bot_env(self.slack, self.okx, port), "AUTOREPAY_DATABASE_URL": self.url,
                "AUTOREPAY_APPROVERS": f"{BOB},{CAROL}", "AUTOREPAY_LOG_LEVEL": "DEBUG",
                **env}, self.cwd)
            replica = Replica(f"replica-{len(self.started) + 1}", port, self.url, process,
                              Lines(process))
            self.started.append(replica)
            launched.append(replica)
        for replica in launched:
            wait_ready(replica.process, replica.port, 30.0, replica.lines)
        return launched

    def end_all(self) -> None:
        for replica in self.started:
            if replica.process.poll() is None or not replica.lines.ended:
                _, replica.stdout = end(replica.process, replica.lines)

    def written(self) -> str:
        return "\n".join(f"{r.lines.text}\n{r.stdout}" for r in self.started)


@pytest.fixture
def replicas(slack: FakeSlack, okx: FakeOkx, postgres: PostgresServer, postgres_url: str,
             tmp_path: Path) -> Iterator[Replicas]:
    group = Replicas(slack, okx, postgres_url, tmp_path)
    try:
        yield group
    finally:
        group.end_all()
    written = group.written()
    for secret in [*SECRETS, postgres.password, quote(postgres.password, safe="")]:
        assert secret not in written, "a secret reached a replica's log"
    assert "Traceback" not in written, written


# --- acting as Slack ---------------------------------------------------------------------
@dataclass
class Approval:
    """An approval message the bot posted: where it is and what its buttons carry."""

    ts: str
    message: dict[str, Any]

    @property
    def request_id(self) -> str:
        return str(find_action(self.message.get("blocks", []), APPROVE)["value"])

    def click(self, slack: FakeSlack, user: str, name: str) -> str:
        return form_payload(block_action(user, APPROVALS, self.ts, self.message, APPROVE,
                                         slack.response_url(name)))


def request_change(replica: Replica, slack: FakeSlack, text: str = "on",
                   name: str = "cmd") -> Approval:
    """`/autorepay on` sent to `replica`; the approval message it posted, recorded."""
    before = len(slack.posted(APPROVALS))
    ack = replica.post(slash_command(text, ALICE, OPS, slack.response_url(name)))
    assert ack.status_code == 200
    slack.wait_for(lambda: len(slack.posted(APPROVALS)) > before, timeout=15)
    call = [c for c in slack.called("chat.postMessage")
            if c.args.get("channel") == APPROVALS and "thread_ts" not in c.args][before]
    approval = Approval(str(call.answer["ts"]), call.args)
    slack.wait_for(lambda: slack.responses_to(name), timeout=15)  # the command's reply
    # A person clicks a message they have seen: by then the bot has recorded it.
    until(lambda: query(replica.url, "SELECT approval_ts FROM requests WHERE id = %s",
                        approval.request_id) == [(approval.ts,)], what="the post recorded")
    return approval


def thread_calls(slack: FakeSlack, ts: str) -> list[Call]:
    return [c for c in slack.called("chat.postMessage")
            if c.answer.get("ok") and c.args.get("thread_ts") == ts]


def updates(slack: FakeSlack, ts: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.called("chat.update") if c.args.get("ts") == ts]


def writes(okx: FakeOkx) -> list[Any]:
    """The POSTs to set-auto-repay OKX received (answered or not)."""
    return [r for r in okx.requests if r.method == "POST" and r.path == SET_AUTO_REPAY]


# --- the database, read as another process would --------------------------------------------
def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def events(url: str, request_id: str | None = None) -> list[str]:
    if request_id is None:
        return [row[0] for row in query(url, "SELECT event FROM audit ORDER BY seq")]
    return [row[0] for row in query(
        url, "SELECT event FROM audit WHERE request_id = %s ORDER BY seq", request_id)]


def settled(url: str, request_id: str) -> bool:
    """Decided, and every job it caused has ended."""
    [(status,)] = query(url, "SELECT status FROM requests WHERE id = %s", request_id)
    [(open_jobs,)] = query(
        url, "SELECT count(*) FROM jobs WHERE request_id = %s AND done_at IS NULL",
        request_id)
    return status not in OPEN and open_jobs == 0


def assert_announced(url: str, request_id: str) -> None:
    """README, Durability: "A decided request is marked announced when its last job has
    ended". Checked last in each test, after everything Slack and OKX saw."""
    [(announced,)] = query(url, "SELECT announced FROM requests WHERE id = %s", request_id)
    assert announced == 1, (
        f"{request_id}: every job ended, but requests.announced is still 0 (its last jobs "
        f"ended at the same moment, each in a transaction of its own): {state(url, request_id)}")


def state(url: str, request_id: str) -> str:
    """The request and its jobs as stored, for a failure message."""
    request = query(url, "SELECT status, announced, approval_ts FROM requests WHERE id = %s",
                    request_id)
    jobs = query(url, "SELECT id, kind, attempts, owner, due_at, lease_until, done_at, error"
                 " FROM jobs WHERE request_id = %s ORDER BY id", request_id)
    return f"request {request}, jobs {jobs} at {time.time():.3f}"


def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "",
          why: Callable[[], str] = str) -> Any:
    """Poll another process's work (the database, the stand-ins) until `check()` holds;
    `why()` says what was seen when it never did."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {what} {why()}")
        time.sleep(0.05)  # another process does the work; nothing to wait on but its effect
    return result


def until_settled(url: str, request_id: str, timeout: float = 15.0) -> None:
    until(lambda: settled(url, request_id), timeout, f"{request_id} decided, its jobs ended",
          lambda: state(url, request_id))


def live_auto_repay(okx: FakeOkx) -> bool:
    return bool(okx.accounts[OKX_ENV["OKX_API_KEY"]].auto_repay)


# --- 1. command on one replica, click on the other ------------------------------------------
def test_a_command_on_one_replica_and_the_click_on_the_other_change_it_once(
        replicas: Replicas, slack: FakeSlack, okx: FakeOkx) -> None:
    a, b = replicas.start(2)
    approval = request_change(a, slack)
    assert b.post(approval.click(slack, BOB, "click")).status_code == 200

    until_settled(replicas.url, approval.request_id)
    [reply] = slack.thread(approval.ts)
    assert "Auto repay is now *ON*" in reply["text"] and "Resumed" not in reply["text"]
    assert live_auto_repay(okx) is True
    assert len(writes(okx)) == 1 and okx.codes() == ["0"]
    assert "Done: auto repay is *ON*" in str(updates(slack, approval.ts)[-1]["blocks"])
    audit = events(replicas.url, approval.request_id)
    assert audit.count("approved") == 1 and audit.count("okx_done") == 1
    # The click was decided where it arrived, and that replica ran the write it claimed.
    decided = f"click id={approval.request_id} user={BOB} verdict=approved"
    assert b.said(decided) and not a.said(decided)
    assert b.said(f"executed id={approval.request_id}")
    assert_announced(replicas.url, approval.request_id)


# --- 2. a burst of clicks spread over both replicas ----------------------------------------
def test_twelve_concurrent_approvals_over_two_replicas_write_once_and_reply_once(
        replicas: Replicas, slack: FakeSlack, okx: FakeOkx) -> None:
    pair = replicas.start(2)
    approval = request_change(pair[0], slack)
    clicks = 12
    # Alternately on each replica; BOB and CAROL each click on both.
    sent = [(pair[n % 2], (BOB, CAROL)[n // 2 % 2], f"click{n}") for n in range(clicks)]
    bodies = [(replica, approval.click(slack, user, name)) for replica, user, name in sent]
    gate = threading.Barrier(clicks)

    def click(item: tuple[Replica, str]) -> int:
        replica, body = item
        gate.wait(timeout=10)
        return replica.post(body).status_code

    with ThreadPoolExecutor(max_workers=clicks) as pool:
        assert list(pool.map(click, bodies)) == [200] * clicks

    until_settled(replicas.url, approval.request_id)
    [reply] = slack.thread(approval.ts)
    assert "Auto repay is now *ON*" in reply["text"]
    assert len(writes(okx)) == 1 and live_auto_repay(okx) is True
    audit = events(replicas.url, approval.request_id)
    assert audit.count("approved") == 1 and audit.count("okx_done") == 1
    assert len([e for e in audit if e.startswith("click_refused")]) == clicks - 1
    assert query(replicas.url, "SELECT count(*) FROM decisions WHERE request_id = %s",
                 approval.request_id) == [(1,)]
    clicked = [line for r in pair for line in r.lines.lines
               if f"click id={approval.request_id} " in line]
    assert len(clicked) == clicks and sum("verdict=approved" in c for c in clicked) == 1
    assert all(any(f"click id={approval.request_id} " in line for line in r.lines.lines)
               for r in pair)  # both replicas decided clicks
    # Every other clicker is told the request was decided already; the winner sees the
    # message change instead.
    told = slack.wait_for(lambda: len(r := [n for _, _, n in sent if slack.responses_to(n)])
                          >= clicks - 1 and r)
    assert len(told) == clicks - 1
    assert all("already" in str(slack.responses_to(name)) for name in told)
    assert_announced(replicas.url, approval.request_id)


# --- 3. SIGKILL of the replica running the OKX write ---------------------------------------
LEASE = 5  # AUTOREPAY_LEASE_SECONDS, its minimum: renewed every LEASE / 3 while running
SLOW = 9.5  # OKX holds the first write this long: past one lease, under the 10 s timeout
TAKEOVER_SLACK = 4.0  # seconds allowed beyond the lease: poll, write, read-back, reply


def test_sigkill_during_a_slow_okx_write_the_other_replica_finishes_after_the_lease(
        replicas: Replicas, slack: FakeSlack, okx: FakeOkx) -> None:
    pair = replicas.start(2, AUTOREPAY_LEASE_SECONDS=str(LEASE))
    approval = request_change(pair[0], slack)
    okx.fail_next("slow", seconds=SLOW, path=SET_AUTO_REPAY)
    assert pair[1].post(approval.click(slack, BOB, "click")).status_code == 200
    okx.wait_for(lambda: writes(okx))

    # The replica that took the click claimed the OKX job itself and is running it.
    decided = f"click id={approval.request_id} user={BOB} verdict=approved"
    [running] = [r for r in pair if r.said(decided)]
    [other] = [r for r in pair if r is not running]

    def job() -> tuple[int, str, int, float]:
        [row] = query(replicas.url, "SELECT id, owner, attempts, lease_until FROM jobs"
                      " WHERE request_id = %s AND kind = 'okx_apply'", approval.request_id)
        return row

    job_id, owner, attempts, first_lease = job()
    assert attempts == 1
    # While it runs, its lease is renewed: past the first lease's end (and the other
    # replica's next look at the table), the job is still the first replica's alone.
    until(lambda: time.time() > first_lease + 0.8 and job()[3] > first_lease,
          timeout=LEASE + 5, what="a lease renewal past the first lease")
    assert job()[:3] == (job_id, owner, 1) and len(writes(okx)) == 1

    running.kill()
    killed = time.perf_counter()
    lease_left_until = job()[3]  # the last renewal: nobody may take it before this

    reply_call = slack.wait_for(lambda: thread_calls(slack, approval.ts),
                                timeout=LEASE + 15)[0]
    took = reply_call.at - killed
    assert took <= LEASE + TAKEOVER_SLACK, f"thread reply {took:.1f} s after the kill"
    assert "Auto repay is now *ON*" in reply_call.args["text"]
    assert "Resumed" in reply_call.args["text"]  # the write was cut off and made again

    until_settled(replicas.url, approval.request_id)
    made = writes(okx)
    assert live_auto_repay(okx) is True
    assert len(made) == 2  # the first was received before the kill, so it is made again
    assert made[1].arrived >= lease_left_until  # not before the dead replica's lease ended
    assert len(slack.thread(approval.ts)) == 1
    audit = events(replicas.url, approval.request_id)
    assert audit.count("approved") == 1 and audit.count("okx_done") == 1
    assert other.said(f"executed id={approval.request_id}")
    [(attempts_in_the_end, owner_in_the_end)] = query(
        replicas.url, "SELECT attempts, owner FROM jobs WHERE id = %s", job_id)
    assert attempts_in_the_end == 2 and owner_in_the_end != owner
    assert_announced(replicas.url, approval.request_id)


# --- 4. replicas started together on an empty database --------------------------------------
def migrations() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_replicas_started_together_on_an_empty_database_migrate_it_once(
        replicas: Replicas) -> None:
    assert query(replicas.url, "SELECT tablename FROM pg_tables"
                 " WHERE schemaname = 'public'") == []
    pair = replicas.start(2)  # launched at the same moment; both must become ready
    assert query(replicas.url, "SELECT version_num FROM alembic_version") == [
        (migrations().get_current_head(),)]
    tables = {row[0] for row in query(
        replicas.url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"requests", "decisions", "audit", "jobs", "turns", "alembic_version"} <= tables
    assert events(replicas.url).count("started") == 2
    # One of them made the schema, each revision once; the other found it made.
    upgrades = [line for r in pair for line in r.lines.lines if "Running upgrade" in line]
    assert len(upgrades) == len(list(migrations().walk_revisions())), upgrades
    assert len([r for r in pair if r.said("Running upgrade")]) == 1
    for replica in pair:
        assert not replica.said("ERROR"), replica.lines.text
        replica.stop()


# --- 5. one expiry announcement with two replicas ------------------------------------------
def expired_once(replicas: Replicas, slack: FakeSlack, approval: Approval,
                 pair: list[Replica]) -> None:
    until_settled(replicas.url, approval.request_id, timeout=30)
    [(status,)] = query(replicas.url, "SELECT status FROM requests WHERE id = %s",
                        approval.request_id)
    assert status == "expired"
    assert events(replicas.url, approval.request_id).count("expired") == 1
    [reply] = slack.thread(approval.ts)
    assert "expired without approval" in reply["text"]
    [update] = updates(slack, approval.ts)
    assert "Expired: nobody approved it in time" in str(update["blocks"])
    told = [dm for dm in slack.dms(ALICE) if "Expired: nobody" in dm["text"]
            and approval.request_id in str(dm)]
    assert len(told) == 1, told
    assert len([line for r in pair for line in r.lines.lines
                if f"expired id={approval.request_id}" in line]) == 1


def test_an_expiry_is_announced_once_with_two_replicas_sweeping(
        replicas: Replicas, slack: FakeSlack, okx: FakeOkx) -> None:
    # A pending request, posted, from a replica since stopped.
    [first] = replicas.start(1)
    pending = request_change(first, slack, name="cmd1")
    first.stop()
    # Its time is up, and the stopped replica's turn at the sweep has run out (instead of
    # waiting AUTOREPAY_APPROVAL_TTL, at least 30 s, and three sweeps, 45 s).
    past = time.time() - 1
    query(replicas.url, "UPDATE requests SET expires_at = %s WHERE id = %s RETURNING id",
          past, pending.request_id)
    query(replicas.url, "UPDATE turns SET until = 0 RETURNING name")
    # Two replicas started together: each sweeps as it starts, both at once.
    pair = replicas.start(2)
    expired_once(replicas, slack, pending, pair)

    # Then a sweep as they run: a new request, overdue at once, is expired by whichever
    # replica holds the turn, at its next sweep (every 15 s, EXPIRY_SWEEP_SECONDS).
    later = request_change(pair[1], slack, name="cmd2")
    query(replicas.url, "UPDATE requests SET expires_at = %s WHERE id = %s RETURNING id",
          time.time() - 1, later.request_id)
    expired_once(replicas, slack, later, pair)
    [(holder,)] = query(replicas.url, "SELECT count(*) FROM turns WHERE name = 'expiry'")
    assert holder == 1
    assert okx.codes() == []  # nothing was written
    assert_announced(replicas.url, pending.request_id)
    assert_announced(replicas.url, later.request_id)
