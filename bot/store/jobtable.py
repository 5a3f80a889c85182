"""The job table: enqueue (inside a decision's transaction), claim under a lease, renew,
finish, retry. SQL for both SQLite and PostgreSQL through SQLAlchemy Core.

Claiming is one write transaction: pick due jobs whose lease has run out (on PostgreSQL
`FOR UPDATE SKIP LOCKED`, so replicas never pick the same row), then stamp them with this
worker's owner id, `lease_until` and one more attempt. Every later change to a claimed
job is conditional on the owner, so a worker whose lease ran out can't finish a job
another worker has taken over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.jobs import Job, Kind
from bot.store.schema import OPEN_STATUSES, jobs, requests

Transaction = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


async def enqueue(db: AsyncConnection, now: float, request_id: str, *kinds: Kind,
                  note: str = "", notes: dict[Kind, str] | None = None) -> None:
    """Add jobs for a request, due now, in the caller's transaction."""
    await db.execute(jobs.insert(), [
        {"request_id": request_id, "kind": kind.value,
         "note": (notes or {}).get(kind, note), "created_at": now, "due_at": now}
        for kind in kinds])


NEVER_WAIT_FOR_POST = (Kind.POST.value, Kind.APPLY.value)  # the OKX job waits for no Slack job
async def enqueue_claimed(db: AsyncConnection, now: float, request_id: str, kind: Kind,
                          owner: str, lease: float) -> Job:
    """Add a job already claimed by `owner` (its first attempt starts now), in the
    caller's transaction: the click that approves also takes the OKX job, so the write
    starts without another round through the table."""
    result = await db.execute(jobs.insert().values(
        request_id=request_id, kind=kind.value, note="", created_at=now, due_at=now,
        attempts=1, lease_until=now + lease, owner=owner))
    job_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert job_id is not None
    return Job(int(job_id), request_id, kind, "", 1, owner)


TELL_LATER = "tell"  # note on an approval post: tell the requester how it ended
INTERRUPTED = "interrupted"  # its process died while running it
STOPPED = "stopped"  # its process was shut down while running it


async def owes_requester(db: AsyncConnection, job: Job) -> bool:
    """Whether ending this approval post must send its requester a note: when the
    command's reply gave up waiting for it, or when it resumed after a crash (the reply
    died with its process)."""
    note = (await db.execute(sa.select(jobs.c.note).where(jobs.c.id == job.id))).scalar()
    return job.resumed or note == TELL_LATER


async def close(db: AsyncConnection, job: Job, now: float, error: str = "") -> bool:
    """Mark a claimed job finished (in the caller's transaction); False when it is not
    this worker's any more. A request in a final state whose last job this was is
    marked announced.

    The request's row is locked first: two replicas closing a request's last two jobs
    at once would each still see the other's job open (PostgreSQL, READ COMMITTED), and
    neither would mark it announced; a job closing while a decision adds new ones could
    mark it too early. Locked, the second waits and then sees what the first did."""
    if db.dialect.name != "sqlite":  # (SQLite's write lock serializes closes already)
        await db.execute(sa.select(requests.c.id).where(requests.c.id == job.request_id)
                         .with_for_update())
    result = await db.execute(
        jobs.update().where(jobs.c.id == job.id, jobs.c.owner == job.owner,
                            jobs.c.done_at.is_(None))
        .values(done_at=now, lease_until=0, error=error[:500]))
    if not result.rowcount:
        return False
    still_open = sa.exists().where(jobs.c.request_id == job.request_id,
                                   jobs.c.done_at.is_(None))
    await db.execute(requests.update().where(
        requests.c.id == job.request_id, requests.c.status.not_in(OPEN_STATUSES),
        requests.c.announced == 0, ~still_open).values(announced=1))
    return True


def unblocked() -> list[sa.ColumnElement[bool]]:
    """Open jobs that wait for no other job: jobs of one kind for one request run one at
    a time, oldest first (two message updates can't overtake each other), and a
    request's Slack jobs wait until its approval message is posted."""
    other = jobs.alias("other")
    post_open = sa.exists().where(other.c.request_id == jobs.c.request_id,
                                  other.c.kind == Kind.POST.value, other.c.done_at.is_(None))
    earlier_open = sa.exists().where(other.c.request_id == jobs.c.request_id,
                                     other.c.kind == jobs.c.kind, other.c.done_at.is_(None),
                                     other.c.id < jobs.c.id)
    return [jobs.c.done_at.is_(None),
            sa.or_(jobs.c.kind.in_(NEVER_WAIT_FOR_POST), ~post_open), ~earlier_open]


class JobTable:
    def __init__(self, transaction: Transaction, reading: Transaction, *,
                 skip_locked: bool) -> None:
        self._transaction = transaction
        self._reading = reading
        self._skip_locked = skip_locked

    async def claim(self, now: float, owner: str, lease: float, limit: int,
                    kinds: Sequence[Kind] | None = None) -> list[Job]:
        """Up to `limit` due, unblocked jobs, now leased to `owner` until now + lease."""
        query = (sa.select(jobs.c.id, jobs.c.lease_until, jobs.c.error)
                 .where(*unblocked(), jobs.c.due_at <= now, jobs.c.lease_until <= now)
                 .order_by(jobs.c.due_at, jobs.c.id).limit(limit))
        if kinds is not None:
            query = query.where(jobs.c.kind.in_([kind.value for kind in kinds]))
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True, of=jobs)
        async with self._transaction() as db:
            picked = (await db.execute(query)).all()
            if not picked:
                return []
            ids = [row.id for row in picked]
            cut_off = [row.id for row in picked
                       if row.lease_until > 0 or row.error in (INTERRUPTED, STOPPED)]
            if cut_off:  # remembered for good: a later retry is still after a crash
                await db.execute(jobs.update().where(jobs.c.id.in_(cut_off))
                                 .values(resumed=1))
            await db.execute(jobs.update().where(jobs.c.id.in_(ids)).values(
                lease_until=now + lease, owner=owner, attempts=jobs.c.attempts + 1))
            rows = (await db.execute(sa.select(jobs).where(jobs.c.id.in_(ids))
                                     .order_by(jobs.c.due_at, jobs.c.id))).all()
        return [Job(row.id, row.request_id, Kind(row.kind), row.note, row.attempts,
                    row.owner, bool(row.resumed)) for row in rows]

    async def renew(self, claimed: Sequence[Job], until: float) -> int:
        """Extend the leases of jobs still running here: how many are still this
        worker's (nobody took them over, they haven't ended)."""
        if not claimed:
            return 0
        renewed = 0
        async with self._transaction() as db:
            for owner in {job.owner for job in claimed}:
                result = await db.execute(jobs.update().where(
                    jobs.c.id.in_([job.id for job in claimed if job.owner == owner]),
                    jobs.c.owner == owner, jobs.c.done_at.is_(None))
                    .values(lease_until=until))
                renewed += result.rowcount
        return renewed

    async def confirm(self, job: Job, until: float) -> bool:
        """Whether the job is still this worker's, its lease renewed until `until`;
        asked right before an OKX write."""
        return await self.renew([job], until) == 1

    async def done(self, job: Job, now: float, error: str = "") -> bool:
        async with self._transaction() as db:
            return await close(db, job, now, error)

    async def retry(self, job: Job, due_at: float, error: str) -> None:
        """Put a job back, due again at `due_at` (its lease given up)."""
        async with self._transaction() as db:
            await db.execute(jobs.update().where(
                jobs.c.id == job.id, jobs.c.owner == job.owner, jobs.c.done_at.is_(None))
                .values(due_at=due_at, lease_until=0, error=error[:500]))

    async def release_all(self) -> int:
        """Give up every lease: only for a store no other process uses (SQLite, locked),
        at start-up, so a job a killed process was running is due at once. Every open
        job an earlier process tried is marked resumed (whoever waited on it is gone)."""
        async with self._transaction() as db:
            result = await db.execute(jobs.update().where(
                jobs.c.done_at.is_(None), jobs.c.lease_until > 0)
                .values(lease_until=0, error=INTERRUPTED))
            await db.execute(jobs.update().where(jobs.c.done_at.is_(None),
                                                 jobs.c.attempts > 0).values(resumed=1))
            return int(result.rowcount)

    async def tell_requester_later(self, job_id: int) -> bool:
        """Mark an approval post whose requester could not be told how it went (the
        command's reply gave up waiting): when it ends, a note goes to them. False if
        it has ended already."""
        async with self._transaction() as db:
            result = await db.execute(jobs.update().where(
                jobs.c.id == job_id, jobs.c.done_at.is_(None)).values(note=TELL_LATER))
            return bool(result.rowcount)

    async def next_due(self, kinds: Sequence[Kind] | None = None) -> float | None:
        """When the earliest job (of `kinds`) that nothing blocks is due, or its lease
        runs out. A blocked job is woken by the end of the job it waits for."""
        claimable_at = sa.case((jobs.c.lease_until > jobs.c.due_at, jobs.c.lease_until),
                               else_=jobs.c.due_at)
        query = sa.select(sa.func.min(claimable_at)).where(*unblocked())
        if kinds is not None:
            query = query.where(jobs.c.kind.in_([kind.value for kind in kinds]))
        async with self._reading() as db:
            value = (await db.execute(query)).scalar()
        return None if value is None else float(value)

    async def ended(self, job_id: int) -> bool:
        """Whether the job has ended (a job that does not exist has)."""
        async with self._reading() as db:
            done_at = (await db.execute(sa.select(jobs.c.id, jobs.c.done_at)
                                        .where(jobs.c.id == job_id))).first()
        return done_at is None or done_at.done_at is not None

    async def open_jobs(self, request_id: str | None = None) -> list[Job]:
        query = sa.select(jobs).where(jobs.c.done_at.is_(None)).order_by(jobs.c.id)
        if request_id is not None:
            query = query.where(jobs.c.request_id == request_id)
        async with self._reading() as db:
            rows = (await db.execute(query)).all()
        return [Job(row.id, row.request_id, Kind(row.kind), row.note, row.attempts,
                    row.owner) for row in rows]
