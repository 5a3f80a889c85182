"""Property-based test of the approval state machine and the job table together
(hypothesis), against a real SQLite store and a clock the test moves.

Random interleavings, on both accounts, of: requests; approve/deny clicks (also two at
the same moment, from two store handles, as two processes make them); time passing and
the expiry sweep; two workers claiming jobs (also both at the same instant) and running
them with simulated OKX and Slack — a job may fail and be put back, an okx_apply job
sends its write and gets OKX's answer in a later step, a Slack job may be refused for
good, an approval post may be refused (the request is abandoned); the command's reply
giving up on the approval post; crashes (one worker or the whole process; the lease runs
out, or a restart releases every lease).

After every step: (1) at most one open request per account; (2) OKX writes only for
approved requests, at most one more than the crashes that cut off its okx_apply job;
(4) at most one "approved" event per request; (5) a job held by a live worker is leased
to it in the database and held by no one else (two workers claiming at the same instant
get disjoint jobs); jobs of one kind for one request run one at a time, and Slack jobs
only after the approval post. After a final drain (every job run until none is open):
(2) each approved request wrote to OKX exactly once without crashes, between once and
once per crash more with them; (3) every decided request has had the jobs that announce
it (update, thread reply for done/failed/denied/expired, the right note to the
requester), no job is open and nothing is unannounced.

`pytest --hypothesis-show-statistics` shows which outcomes the examples reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sqlalchemy import make_url

from bot.accounts import Account
from bot.approvals import OPEN, ChangeRequest, Rules, Status
from bot.jobs import MAX_RETRY_SECONDS, Job, Kind, Note, retry_delay
from bot.store import Store
from bot.store.engine import make_engine
from tests.conftest import BACKENDS
from tests.pg import PostgresServer

START = 1_000.0
TTL = 60.0
LEASE = 15.0
# (The first of each is what hypothesis tries first: make it the one that goes through.)
REQUESTERS = ("UDAVE", "UALICE")
APPROVERS = ("UBOB", "UCAROL", "UALICE")  # UALICE approving her own request is refused
CHANNEL = "CAPPR"
# A database per example, in memory where the OS offers it: durability is not what is
# tested here, and a busy disk would make the test slow.
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
RESULT_STATUSES = (Status.DONE, Status.FAILED, Status.DENIED, Status.EXPIRED)

RunOutcome = Literal["ok", "fail", "refused"]  # refused: OKX says no / Slack says never


# --- the steps ----------------------------------------------------------------------------
@dataclass(frozen=True)
class NewRequest:
    account: Account
    desired: bool
    requester: str


@dataclass(frozen=True)
class Click:
    pick: int  # 0: the newest request, 1: the one before, …
    user: str
    approve: bool


@dataclass(frozen=True)
class ClickTogether:  # two approvers click at the same moment, from two processes
    pick: int
    approve: bool


@dataclass(frozen=True)
class Wait:
    seconds: float
    sweep: bool  # then run the expiry sweep


@dataclass(frozen=True)
class Claim:
    worker: int
    limit: int


@dataclass(frozen=True)
class ClaimTogether:  # both workers claim at the same instant
    limit: int


@dataclass(frozen=True)
class Run:  # an okx_apply job sends its write, and a later Run gets OKX's answer
    worker: int
    pick: int  # which of its held jobs
    outcome: RunOutcome


@dataclass(frozen=True)
class Crash:
    worker: int | None  # None: both
    grab: bool  # first it claims every due job and starts on them (OKX writes go out)
    restart: bool  # the process restarts and releases every lease (both workers die);
    #                otherwise the dead worker's leases run out


@dataclass(frozen=True)
class Work:  # a worker claims due jobs and runs them all at once
    worker: int
    outcome: RunOutcome


@dataclass(frozen=True)
class GiveUp:  # the command's reply stops waiting for the approval message
    pick: int


Step = (NewRequest | Click | ClickTogether | Wait | Claim | ClaimTogether | Run | Work | Crash
        | GiveUp)


def chunk(first: tuple[Step, ...], rest: list[Step]) -> tuple[Step, ...]:
    return (*first, *rest)


PICK = st.integers(0, 5)  # clicks: 0 is the newest request; runs: a held job
WORKER = st.integers(0, 1)
LIMIT = st.integers(1, 6)
CLAIM = st.builds(Claim, WORKER, LIMIT)
CRASH = st.builds(Crash, st.sampled_from([0, 1, None]), st.booleans(), st.booleans())
WORK = st.sampled_from(["ok", "ok", "fail", "refused"])
# A round: a request, the clicks on it that follow at once, then anything.
ASKED = st.builds(
    chunk,
    st.tuples(st.builds(NewRequest, st.sampled_from([Account.LIVE, Account.DEMO]),
                        st.booleans(), st.sampled_from(REQUESTERS))),
    st.lists(st.builds(Click, st.just(0), st.sampled_from(APPROVERS),
                       st.sampled_from([True, True, True, False])), max_size=3))
ANYTHING: st.SearchStrategy[Step] = st.one_of(
    st.builds(Click, PICK, st.sampled_from(APPROVERS), st.booleans()),
    st.builds(ClickTogether, PICK, st.booleans()),
    st.builds(Wait, st.sampled_from([TTL, 0.5, 3.0, 12.0]), st.sampled_from([True, False])),
    st.builds(Wait, st.just(TTL), st.booleans()),
    CLAIM,
    st.builds(ClaimTogether, LIMIT),
    st.builds(Run, WORKER, PICK, WORK),
    st.builds(Work, WORKER, WORK),
    CRASH,
    st.builds(GiveUp, PICK),
)
ROUND = st.builds(chunk, ASKED, st.lists(ANYTHING, max_size=4))
# Crashes while OKX writes are in flight: one account, requests approved as they are made,
# often followed at once by a worker that sends the write and dies.
APPROVED = st.tuples(
    st.builds(NewRequest, st.just(Account.LIVE), st.booleans(), st.just("UALICE")),
    st.builds(Click, st.just(0), st.sampled_from(["UBOB", "UCAROL"]), st.just(True)))
CUT_OFF = st.builds(chunk, APPROVED, st.tuples(
    st.builds(Crash, st.sampled_from([0, 1, None]), st.just(True), st.booleans())))
CRASHY = st.builds(chunk, st.one_of(APPROVED, CUT_OFF), st.lists(st.one_of(
    CLAIM,
    st.builds(ClaimTogether, LIMIT),
    st.builds(Run, WORKER, PICK, st.sampled_from(["ok", "fail"])),
    st.builds(Work, WORKER, st.just("ok")),
    CRASH,
    st.builds(Wait, st.sampled_from([0.5, 12.0]), st.just(False)),
), max_size=3))


# --- the simulation -----------------------------------------------------------------------
class Raw:
    """A plain look at the database through its own driver (sqlite3 or psycopg),
    independent of the store's queries; `?` marks a parameter on both."""

    def __init__(self, where: Path | str) -> None:
        self._sqlite = isinstance(where, Path)
        self._db: Any = sqlite3.connect(f"file:{where}?mode=ro", uri=True) if self._sqlite \
            else psycopg.connect(str(where), autocommit=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql if self._sqlite else sql.replace("?", "%s"), params)

    def close(self) -> None:
        self._db.close()


@contextlib.contextmanager
def raw(where: Path | str) -> Iterator[Raw]:
    db = Raw(where)
    try:
        yield db
    finally:
        db.close()


@dataclass
class Sim:
    path: Path | str  # a SQLite file or a PostgreSQL URL
    stores: tuple[Store, Store]  # worker 0 and worker 1 each have their own handle
    rules: Rules
    now: float = START
    held: list[dict[int, Job]] = field(default_factory=lambda: [{}, {}])
    generation: list[int] = field(default_factory=lambda: [0, 0])
    requests: list[str] = field(default_factory=list)  # stored requests, oldest first
    post_jobs: dict[str, int] = field(default_factory=dict)
    told_later: set[str] = field(default_factory=set)  # reply gave up: a job tells them
    sent: list[dict[int, ChangeRequest]] = field(default_factory=lambda: [{}, {}])
    writes: Counter[str] = field(default_factory=Counter)  # OKX writes per request
    crashes: Counter[str] = field(default_factory=Counter)  # while its okx_apply was held
    made: int = 0
    slow: int = 0  # writes whose answer came in a later step

    @property
    def store(self) -> Store:
        return self.stores[0]

    def owner(self, worker: int) -> str:
        return f"w{worker}.{self.generation[worker]}"

    # --- steps ------------------------------------------------------------------------
    async def step(self, step: Step) -> None:
        match step:
            case NewRequest():
                await self.new_request(step)
            case Click():
                if self.requests:
                    request_id = self.requests[-1 - step.pick % len(self.requests)]
                    outcome = await self.store.decide(request_id, step.user, step.approve,
                                                      self.now, self.rules)
                    assert outcome is not None
            case ClickTogether():
                if self.requests:
                    request_id = self.requests[-1 - step.pick % len(self.requests)]
                    outcomes = await asyncio.gather(*(
                        store.decide(request_id, user, step.approve, self.now, self.rules)
                        for store, user in zip(self.stores, ("UBOB", "UCAROL"), strict=True)))
                    assert None not in outcomes
            case Wait():
                await self.advance(step.seconds)
                if step.sweep:
                    await self.store.expire_due(self.now)
            case Claim():
                await self.claim(step.worker, step.limit)
            case ClaimTogether():
                first, second = await asyncio.gather(
                    self.stores[0].jobs.claim(self.now, self.owner(0), LEASE, step.limit),
                    self.stores[1].jobs.claim(self.now, self.owner(1), LEASE, step.limit))
                # 5. two workers never get the same job
                assert not {j.id for j in first} & {j.id for j in second}, (first, second)
                self.hold(0, first)
                self.hold(1, second)
            case Run():
                held = sorted(self.held[step.worker].values(), key=lambda j: j.id)
                if held:
                    job = held[step.pick % len(held)]
                    await self.run(step.worker, job, step.outcome, answer=False)
            case Work():
                await self.claim(step.worker, 10)
                for job in sorted(self.held[step.worker].values(), key=lambda j: j.id):
                    await self.run(step.worker, job, step.outcome)
            case Crash():
                await self.crash(step)
            case GiveUp():
                if self.requests:
                    request_id = self.requests[-1 - step.pick % len(self.requests)]
                    if await self.store.jobs.tell_requester_later(self.post_jobs[request_id]):
                        self.told_later.add(request_id)

    async def new_request(self, step: NewRequest) -> None:
        self.made += 1
        request = ChangeRequest(
            id=f"ar-{self.made:08x}", requester=step.requester, account=step.account,
            desired=step.desired, status=Status.PENDING, created_at=self.now,
            expires_at=self.now + TTL, origin_channel="COPS", approval_channel=CHANNEL)
        added = await self.store.add(request, self.now)
        if added.post_job is None:  # duplicate, or the open one is being applied
            assert added.request.id != request.id
            assert await self.store.get(request.id) is None
            return
        self.requests.append(request.id)
        self.post_jobs[request.id] = added.post_job

    async def advance(self, seconds: float) -> None:
        """Time passes; live workers renew the leases of the jobs they hold (as
        bot.worker does every third of a lease, so a live worker's lease never runs out)."""
        self.now += seconds
        for worker in (0, 1):
            await self.stores[worker].jobs.renew(list(self.held[worker].values()),
                                                 self.now + LEASE)

    async def claim(self, worker: int, limit: int) -> None:
        self.hold(worker, await self.stores[worker].jobs.claim(self.now, self.owner(worker),
                                                               LEASE, limit))

    def hold(self, worker: int, jobs: list[Job]) -> None:
        for job in jobs:
            assert job.owner == self.owner(worker)
            assert all(job.id not in held for held in self.held), f"{job} claimed twice"
            self.held[worker][job.id] = job

    async def run(self, worker: int, job: Job, outcome: RunOutcome, *,
                  answer: bool = True) -> None:
        """What handlers.work.JobRunner and bot.worker do with one job, OKX and Slack
        simulated: 'fail' raises before any outside call (the job is put back). An
        okx_apply job sends its write; without `answer` it stays held, waiting for
        OKX's answer (a later run, or a crash that leaves the outcome unknown)."""
        store = self.stores[worker]
        if (final := self.sent[worker].pop(job.id, None)) is not None:  # OKX answers
            assert await store.finish(final, job, self.now), "finished twice"
            await self.done(worker, job)
            return
        if outcome == "fail":
            await store.jobs.retry(job, self.now + retry_delay(job.attempts), "boom")
            self.held[worker].pop(job.id, None)
            return
        if job.kind not in (Kind.APPLY, Kind.POST):  # Slack only: it went, or never will
            await self.done(worker, job, "Slack answered no" if outcome == "refused" else "")
            return
        request = await store.get(job.request_id)
        assert request is not None
        error = ""
        if job.kind is Kind.APPLY:
            if request.status is Status.APPROVED:  # bot.service.AutoRepay.execute
                self.writes[request.id] += 1
                self.sent[worker][job.id] = (
                    request.moved_to(Status.DONE, result=request.desired)
                    if outcome == "ok" else
                    request.moved_to(Status.FAILED, result=not request.desired,
                                     error_code="51010", error_text="wrong mode"))
                if answer:
                    await self.run(worker, job, outcome)
                else:
                    self.slow += 1
                return
        elif request.status is Status.PENDING and not request.approval_ts:  # post it
            if outcome == "ok":
                await store.posted(job, CHANNEL, f"{self.now:.6f}", self.now)
            else:  # Slack refuses the bot for good
                failed = request.moved_to(Status.FAILED, error_code="slack:not_in_channel",
                                          error_text="not posted")
                await store.abandon(failed, job, self.now)
                error = "Slack answered not_in_channel"
        await self.done(worker, job, error)

    async def done(self, worker: int, job: Job, error: str = "") -> None:
        await self.stores[worker].jobs.done(job, self.now, error)  # (as bot.worker does)
        self.held[worker].pop(job.id, None)

    async def crash(self, step: Crash) -> None:
        victims = (0, 1) if step.worker is None or step.restart else (step.worker,)
        if step.grab:  # OKX writes go out, and then it dies
            grabber = victims[-1]
            await self.claim(grabber, 32)
            for job in sorted(self.held[grabber].values(), key=lambda j: j.id):
                if job.kind is Kind.APPLY:
                    await self.run(grabber, job, "ok", answer=False)
        for worker in victims:
            for job in self.held[worker].values():
                if job.kind is not Kind.APPLY:
                    continue
                request = await self.store.get(job.request_id)
                assert request is not None
                if request.status is Status.APPROVED:  # its write may have been sent
                    self.crashes[request.id] += 1
            self.held[worker] = {}
            self.sent[worker] = {}
            self.generation[worker] += 1
        if step.restart:
            await self.store.jobs.release_all()
        else:
            await self.advance(LEASE + 0.5)

    async def drain(self) -> None:
        """Run every job to its end: first those the live workers hold, then whatever
        falls due, waiting out retry delays, until no job is open."""
        for worker in (0, 1):
            for job in sorted(self.held[worker].values(), key=lambda j: j.id):
                await self.run(worker, job, "ok")
            assert not self.held[worker] and not self.sent[worker]
        for _ in range(200):
            jobs = await self.store.jobs.claim(self.now, "drain", LEASE, 50)
            for job in jobs:
                await self.run(0, job, "ok")
            if not jobs:
                if not await self.store.jobs.open_jobs():
                    return
                await self.advance(MAX_RETRY_SECONDS)
        raise AssertionError(f"jobs still open after the drain: "
                             f"{await self.store.jobs.open_jobs()}")

    # --- invariants -------------------------------------------------------------------
    def check_step(self) -> None:
        with raw(self.path) as db:
            open_per_account = db.execute(
                "SELECT account, COUNT(*) FROM requests WHERE status IN (?, ?) "
                "GROUP BY account", [s.value for s in OPEN]).fetchall()
            leases = {row[0]: row[1:] for row in db.execute(
                "SELECT id, owner, lease_until, done_at FROM jobs")}
            approved = Counter(dict(db.execute(
                "SELECT request_id, COUNT(*) FROM audit WHERE event = 'approved' "
                "GROUP BY request_id").fetchall()))
            unposted = {row[0] for row in db.execute(
                "SELECT request_id FROM jobs WHERE kind = ? AND done_at IS NULL",
                [Kind.POST.value])}
        # 1. at most one open request per account
        assert all(count <= 1 for _, count in open_per_account), open_per_account
        # 5. a held job is leased to its holder, and to no one else
        for worker in (0, 1):
            for job in self.held[worker].values():
                owner, lease_until, done_at = leases[job.id]
                assert (owner, done_at) == (self.owner(worker), None), (job, owner, done_at)
                assert lease_until > self.now, (job, lease_until, self.now)
        assert not self.held[0].keys() & self.held[1].keys()
        assert all(self.sent[w].keys() <= self.held[w].keys() for w in (0, 1))
        # jobs of one kind for one request run one at a time; Slack jobs after the post
        held = [job for jobs in self.held for job in jobs.values()]
        assert len({(job.request_id, job.kind) for job in held}) == len(held), held
        assert not [job for job in held if job.kind not in (Kind.POST, Kind.APPLY)
                    and job.request_id in unposted], (held, unposted)
        # 4. a decision happens at most once
        assert all(count == 1 for count in approved.values()), approved
        # 2. OKX writes only for approved requests, repeated only after crashes
        for request_id, writes in self.writes.items():
            assert approved[request_id] == 1, f"{request_id}: written, never approved"
            assert writes <= 1 + self.crashes[request_id], (request_id, writes)

    async def check_end(self) -> None:
        # 3. nothing left to run, nothing unannounced
        assert await self.store.jobs.open_jobs() == []
        assert await self.store.unannounced() == []
        with raw(self.path) as db:
            jobs = db.execute("SELECT request_id, kind, note, done_at, attempts FROM jobs"
                              ).fetchall()
        kinds: dict[str, Counter[Kind]] = {r: Counter() for r in self.requests}
        notes: dict[str, Counter[str]] = {r: Counter() for r in self.requests}
        for request_id, kind, note, done_at, attempts in jobs:
            assert done_at is not None and attempts >= 1
            kinds[request_id][Kind(kind)] += 1
            if kind == Kind.TELL:
                notes[request_id][note] += 1
        for request_id in self.requests:
            request = await self.store.get(request_id)
            assert request is not None
            events = [e.event for e in await self.store.audit_events(request_id)]
            self.check_request(request, events.count("approved"), kinds[request_id],
                               notes[request_id])

    def report(self) -> None:
        """What this example reached (shown by pytest --hypothesis-show-statistics)."""
        with raw(self.path) as db:
            for (status,) in db.execute("SELECT DISTINCT status FROM requests"):
                event(f"a request ended {status}")
        if any(self.crashes.values()):
            event("a crash cut off an okx_apply job")
        if self.slow:
            event("an OKX write waited for its answer across steps")
        if any(w > 1 for w in self.writes.values()):
            event("an OKX write was repeated after a crash")

    def check_request(self, request: ChangeRequest, approved: int, kinds: Counter[Kind],
                      notes: Counter[str]) -> None:
        writes, crashes = self.writes[request.id], self.crashes[request.id]
        context = (request, approved, kinds, notes, writes, crashes)
        assert approved <= 1, context  # 4.
        assert kinds[Kind.POST] == 1, context
        if request.status in OPEN:  # approved ones have all been applied by the drain
            assert request.status is Status.PENDING and not approved, context
            assert writes == 0 and not kinds[Kind.APPLY], context
            return
        if approved:
            # 2. one write per approved request; more only when a crash cut one off
            assert request.status in (Status.DONE, Status.FAILED), context
            assert 1 <= writes <= 1 + crashes, context
            assert crashes or writes == 1, context
            assert kinds[Kind.APPLY] == 1, context
            assert len(request.approvers) == self.rules.approvals_required, context
            assert len(set(request.approvers)) == len(request.approvers), context
            assert request.requester not in request.approvers, context
        else:  # denied, expired, superseded, or its approval message refused
            assert writes == 0 and not kinds[Kind.APPLY], context
        # 3. the jobs that announce a decided request
        expected_tell = Counter[str]()
        if request.status is Status.SUPERSEDED:
            assert kinds[Kind.UPDATE] >= 1 and kinds[Kind.THREAD] == 0, context
            expected_tell[Note.SUPERSEDED] = 1
        elif request.status is Status.FAILED and not approved:  # never posted: no message
            assert request.error_code == "slack:not_in_channel", context
            assert kinds[Kind.THREAD] == 0, context
        else:
            assert request.status in RESULT_STATUSES, context
            assert kinds[Kind.UPDATE] >= 1 and kinds[Kind.THREAD] == 1, context
            expected_tell[Note.RESULT] = 1
        # How the approval post went: a note when the command's reply gave up waiting
        # (and, maybe, after a crash), never one that contradicts what happened.
        abandoned = request.status is Status.FAILED and not approved
        said = Note.POSTED if request.approval_ts else Note.NOT_POSTED if abandoned else None
        if said is not None and (request.id in self.told_later or notes[said]):
            expected_tell[said] = 1
        assert notes == expected_tell, context


@dataclass(frozen=True)
class Template:
    """An empty database, migrated once: each example starts from a copy of it."""

    path: Path | None = None  # SQLite
    postgres: PostgresServer | None = None
    name: str = ""  # PostgreSQL: the template database

    @contextlib.contextmanager
    def copy(self) -> Iterator[Path | str]:
        if self.postgres is not None:
            url = self.postgres.new_database(template=self.name)
            try:
                yield url
            finally:
                self.postgres.drop_database(url)
            return
        assert self.path is not None
        with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
            path = Path(tmp) / "a.db"
            shutil.copyfile(self.path, path)
            yield path


@pytest.fixture(scope="module", params=BACKENDS)
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Template]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("jobs") / "template.db"
        asyncio.run(migrate(path))
        yield Template(path=path)
        return
    postgres: PostgresServer = request.getfixturevalue("postgres")
    url = postgres.new_database()
    asyncio.run(migrate(url))
    yield Template(postgres=postgres, name=str(make_url(url).database))
    postgres.drop_database(url)


async def migrate(where: Path | str) -> None:
    await (await Store.open(where)).aclose()


async def simulate(template: Template, steps: list[Step], rules: Rules) -> None:
    with template.copy() as path:
        # Two handles, as two processes (or replicas) have: one per worker.
        stores = (Store(make_engine(path)), Store(make_engine(path)))
        try:
            sim = Sim(path, stores, rules)
            for step in steps:
                await sim.step(step)
                sim.check_step()
            await sim.drain()
            sim.check_step()
            await sim.check_end()
            sim.report()
        finally:
            for store in stores:
                await store.aclose()


@settings(max_examples=20, deadline=None)
@given(rounds=st.lists(ROUND, min_size=4, max_size=7), quorum=st.sampled_from([1, 2]))
def test_random_interleavings_keep_the_invariants(template: Template,
                                                  rounds: list[tuple[Step, ...]],
                                                  quorum: int) -> None:
    steps = [step for part in rounds for step in part]
    asyncio.run(simulate(template, steps, Rules(approvals_required=quorum)))


@settings(max_examples=15, deadline=None)
@given(rounds=st.lists(CRASHY, min_size=4, max_size=7))
def test_crashes_repeat_an_okx_write_only_when_its_outcome_is_unknown(
        template: Template, rounds: list[tuple[Step, ...]]) -> None:
    steps = [step for part in rounds for step in part]
    asyncio.run(simulate(template, steps, Rules(approvals_required=1)))
