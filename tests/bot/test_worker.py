"""The worker on its own: a fake job table in memory, jobs that hang or fail."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from bot.jobs import Job, Kind
from bot.worker import Worker


class Table:
    """Just enough of bot.store.jobtable.JobTable: `jobs` wait to be claimed."""

    def __init__(self, jobs: list[Job]) -> None:
        self.waiting = list(jobs)
        self.claims = 0
        self.retried: list[tuple[int, str]] = []
        self.finished: list[int] = []
        self.renewals: list[list[int]] = []

    async def claim(self, now: float, owner: str, lease: float, limit: int,
                    kinds: Sequence[Kind] | None = None) -> list[Job]:
        self.claims += 1
        fits = [job for job in self.waiting if kinds is None or job.kind in kinds][:limit]
        self.waiting = [job for job in self.waiting if job not in fits]
        return fits

    async def next_due(self, kinds: Sequence[Kind] | None = None) -> float | None:
        due = [job for job in self.waiting if kinds is None or job.kind in kinds]
        return 0.0 if due else None

    async def done(self, job: Job, now: float, error: str = "") -> bool:
        self.finished.append(job.id)
        return True

    async def retry(self, job: Job, due_at: float, error: str) -> None:
        self.retried.append((job.id, error))

    async def renew(self, claimed: Sequence[Job], until: float) -> int:
        self.renewals.append(sorted(job.id for job in claimed))
        return len(claimed)

    async def ended(self, job_id: int) -> bool:
        return True


def job(number: int) -> Job:
    return Job(number, f"ar-{number}", Kind.UPDATE, "", 1, "me")


def test_a_full_worker_waits_for_a_free_slot_instead_of_spinning() -> None:
    """Seen: with every slot taken by a hung Slack call, a new job made the claim loop
    run without ever yielding; the process froze (no acks, SIGTERM ignored). The loop
    runs in a thread of its own, so that a frozen one fails this test instead of
    hanging it."""
    table = Table([job(1)])

    async def scenario() -> None:
        hang = asyncio.Event()

        async def run(_: Job) -> None:
            await hang.wait()

        worker = Worker(table, run, concurrency=1, idle_poll=0.05)  # type: ignore[arg-type]
        worker.start()
        await asyncio.sleep(0.05)
        table.waiting.append(job(2))
        worker.wake()
        await asyncio.sleep(0.2)  # the loop must keep turning for other work
        assert table.claims < 20  # a spinning loop makes thousands
        hang.set()
        while len(table.finished) < 2:
            await asyncio.sleep(0.01)
        await worker.stop(drain=1.0)

    thread = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(timeout=5.0)
    assert not thread.is_alive(), "the worker's loop never gave the event loop back"
    assert sorted(table.finished) == [1, 2]


async def test_a_failing_job_is_put_back_with_its_error_and_the_loop_goes_on() -> None:
    table = Table([job(1), job(2)])

    async def run(claimed: Job) -> None:
        if claimed.id == 1:
            raise RuntimeError("boom")

    worker = Worker(table, run, idle_poll=0.05)  # type: ignore[arg-type]
    worker.start()
    for _ in range(100):
        if table.retried and table.finished:
            break
        await asyncio.sleep(0.01)
    await worker.stop(drain=1.0)
    assert table.retried == [(1, "RuntimeError: boom")] and table.finished == [2]


async def test_a_stopping_worker_keeps_renewing_the_leases_of_jobs_it_drains() -> None:
    """Seen: the lease keeper ended as soon as a stop began, so a job drained for longer
    than its lease was taken over by another replica while still running here (and
    written to OKX twice)."""
    table = Table([job(1)])
    release = asyncio.Event()

    async def run(_: Job) -> None:
        await release.wait()

    worker = Worker(table, run, lease=0.3, idle_poll=0.05)  # type: ignore[arg-type]
    worker.start()
    while not worker.busy:
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(worker.stop(drain=5.0))
    await asyncio.sleep(0.05)
    before = len(table.renewals)
    await asyncio.sleep(0.5)  # more than a lease into the drain
    assert len(table.renewals) >= before + 2 and table.renewals[-1] == [1]
    release.set()
    await stopping
    assert table.finished == [1]
    after = len(table.renewals)
    await asyncio.sleep(0.3)
    assert len(table.renewals) == after  # the keeper ended with the last job
