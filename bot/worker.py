"""The job worker: claims due jobs, runs each in its own task, retries failures.

- A job is claimed under a lease (`lease` seconds, renewed every third of it while the
  job runs), so a job whose process died is taken up again once its lease runs out;
  with one process on SQLite, leases are given up at start-up instead.
- Any exception from a job puts it back, due after `retry_delay(attempts)` (0.5 s
  doubling to at most 10 s), with one log line. `Permanent` ends it: the runner's
  fallback has said what it could.
- Each job runs in its own task: up to `concurrency` Slack jobs and, in slots of their
  own, up to OKX_SLOTS OKX jobs, so an OKX write never queues behind Slack calls that
  hang.
- The loop itself never dies: an error while claiming is logged and tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.database_watch import unreachable
from bot.jobs import LEASE_SECONDS, Job, Kind, Lost, Unconfirmed, retry_delay
from bot.store.jobtable import STOPPED, JobTable

log = logging.getLogger("bot.worker")

IDLE_POLL_SECONDS = 1.0  # jobs another process added, leases that ran out
MAX_CLAIM_PAUSE = 8.0  # between tries while the job table can't be read
SLACK_JOB_SECONDS = 30.0  # a hung Slack call gives its slot back after this
OKX_SLOTS = 16  # OKX jobs at once, besides `concurrency` Slack jobs
SLACK_KINDS = tuple(kind for kind in Kind if kind is not Kind.APPLY)


class Permanent(Exception):
    """The job can never succeed (a permanent Slack error): end it, don't retry."""

    def __init__(self, code: str) -> None:
        super().__init__(f"Slack answered {code}")
        self.code = code


Runner = Callable[[Job], Awaitable[None]]


class Worker:
    def __init__(self, table: JobTable, run: Runner, *,
                 clock: Callable[[], float] = time.time, lease: float = LEASE_SECONDS,
                 concurrency: int = 64, idle_poll: float = IDLE_POLL_SECONDS) -> None:
        self._table = table
        self._run = run
        self._clock = clock
        self._lease = lease
        self._concurrency = concurrency
        self._idle_poll = idle_poll
        self.owner = secrets.token_hex(6)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._running: dict[int, tuple[Job, asyncio.Task[None]]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._keeper: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()  # every job ended after a stop: leases need no care

    # --- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._loops = [asyncio.create_task(self._claim_forever())]
        self._keeper = asyncio.create_task(self._keep_leases())

    async def stop(self, drain: float) -> None:
        """Claim nothing more; let running jobs finish for up to `drain` seconds, then
        cancel them (their leases are given up, so a restart runs them at once).

        The loops are asked to end, not cancelled: a transaction cut off half way could
        keep SQLite's write lock until its connection is collected."""
        self._stopping.set()
        self._wake.set()
        _, stuck = await asyncio.wait(self._loops, timeout=5.0) if self._loops else ((), ())
        for loop in stuck:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        tasks = [task for _, task in self._running.values()]
        if tasks:  # (their leases are still renewed meanwhile: nobody else takes them)
            _, late = await asyncio.wait(tasks, timeout=drain)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._drained.set()
        if self._keeper is not None:
            await asyncio.gather(self._keeper, return_exceptions=True)

    @property
    def claimant(self) -> tuple[str, float]:
        """(owner, lease) for a job claimed outside `claim` (bot.store.decide)."""
        return self.owner, self._lease

    def run_claimed(self, job: Job) -> None:
        """Run a job this worker holds already (claimed in the transaction that made
        it), at once and even with every slot taken: it is an approval's OKX write."""
        task = asyncio.create_task(self._attempt(job), name=f"job-{job.id}")
        self._running[job.id] = (job, task)

    def wake(self) -> None:
        """New jobs are due: claim them now instead of at the next poll."""
        self._wake.set()

    @property
    def busy(self) -> int:
        return len(self._running)

    async def settled(self, job_id: int, timeout: float) -> bool:
        """Wait until the job has ended (with its retries); False if `timeout` passed
        first. Works whichever process runs it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if await self._table.ended(job_id):
                return True
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), min(left, self._idle_poll / 4))

    # --- the loops ----------------------------------------------------------------------
    async def _claim_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._claim()
                failures = 0
                await self._idle()
            except Exception as exc:
                failures += 1
                pause = min(self._idle_poll * 2 ** (failures - 1), MAX_CLAIM_PAUSE)
                log.warning("job worker: the job table could not be read (%s); trying again "
                            "in %.0f s", describe(exc), pause, exc_info=not expected(exc))
                # New work (or the database watch seeing the database back) ends the
                # pause: a request made just after an outage isn't kept waiting.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    async def _claim(self) -> None:
        # Cleared first, also when every slot is taken: `_idle` then waits for a job to
        # end (it sets `_wake`) instead of returning at once, round and round.
        self._wake.clear()
        if self._stopping.is_set():
            return
        # OKX jobs have slots of their own: Slack calls that hang can't hold them up.
        for kinds, free in self._free_slots():
            for job in await self._table.claim(self._clock(), self.owner, self._lease,
                                               free, kinds):
                task = asyncio.create_task(self._attempt(job), name=f"job-{job.id}")
                self._running[job.id] = (job, task)

    def _free_slots(self) -> list[tuple[tuple[Kind, ...], int]]:
        """(kinds, free slots) for each kind of slot with room left."""
        applying = sum(job.kind is Kind.APPLY for job, _ in self._running.values())
        slots = [((Kind.APPLY,), OKX_SLOTS - applying),
                 (SLACK_KINDS, self._concurrency - (len(self._running) - applying))]
        return [(kinds, free) for kinds, free in slots if free > 0]

    async def _idle(self) -> None:
        """Until woken, or the next job is due, or the poll interval has passed."""
        if self._wake.is_set():
            return
        timeout = self._idle_poll
        # Only jobs with a free slot count: an overdue job that can't be run anyway
        # would make this poll the table without pause. A job ending sets `_wake`.
        kinds = [kind for group, _ in self._free_slots() for kind in group]
        if kinds:
            next_due = await self._table.next_due(kinds)
            if next_due is not None:
                timeout = max(0.0, min(timeout, next_due - self._clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _keep_leases(self) -> None:
        """Every third of a lease, until the last job has ended (a stop's drain included:
        a job still running while the bot stops stays its own)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self._lease / 3)
            if self._drained.is_set():
                return
            try:
                await self._table.renew([job for job, _ in self._running.values()],
                                        self._clock() + self._lease)
            except Exception as exc:
                log.warning("job worker: leases could not be renewed (%s); trying again",
                            describe(exc), exc_info=not expected(exc))

    # --- one attempt --------------------------------------------------------------------
    async def _attempt(self, job: Job) -> None:
        try:
            await self._run_bounded(job)
            await self._table.done(job, self._clock())
        except Permanent as exc:
            log.warning("job ended without its work id=%s kind=%s request=%s: %s",
                        job.id, job.kind, job.request_id, exc)
            await self._table.done(job, self._clock(), str(exc))
        except Lost as exc:
            log.warning("job taken over by another worker id=%s kind=%s: %s", job.id,
                        job.kind, exc)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._table.retry(job, self._clock(), STOPPED))
            raise
        except Exception as exc:
            await self._put_back(job, exc)
        finally:
            self._running.pop(job.id, None)
            self._wake.set()
            self._finished.set()
            self._finished = asyncio.Event()

    async def _run_bounded(self, job: Job) -> None:
        if job.kind is Kind.APPLY:  # bounded by the OKX client's own deadline
            await self._run(job)
            return
        budget = asyncio.timeout(SLACK_JOB_SECONDS)
        try:
            async with budget:
                await self._run(job)
        except TimeoutError:
            if budget.expired():
                raise TimeoutError(f"job took over {SLACK_JOB_SECONDS:.0f} s") from None
            raise  # a Slack call's own timeout (10 s)

    async def _put_back(self, job: Job, exc: Exception) -> None:
        delay = retry_delay(job.attempts)
        log.warning("job failed id=%s kind=%s request=%s attempt=%d: %s; next try in %.1f s",
                    job.id, job.kind, job.request_id, job.attempts, describe(exc), delay,
                    exc_info=not expected(exc))
        try:
            await self._table.retry(job, self._clock() + delay, describe(exc))
        except Exception as exc:
            log.warning("job id=%s could not be put back (%s); its lease will run out",
                        job.id, describe(exc), exc_info=not expected(exc))


def describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack answered {exc.response.get('error', 'an error')}"
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time (TimeoutError)"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def expected(exc: BaseException) -> bool:
    """Failures of the outside world (a line is enough); anything else gets a traceback."""
    return isinstance(exc, SlackClientError | aiohttp.ClientError | TimeoutError | OSError
                      | Unconfirmed) or unreachable(exc)
