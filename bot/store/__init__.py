"""Storage: change requests, decisions, jobs and the audit log, through SQLAlchemy
Core's async engine (aiosqlite for SQLite, psycopg 3 for PostgreSQL; the same queries).

Every state change is one transaction, so a transition decided by `approvals.decide()`
is applied at most once even with many clicks at the same moment, from any number of
processes: on SQLite the transaction takes the file's write lock first (`BEGIN
IMMEDIATE`, emitted from the engine's "begin" event); on PostgreSQL (several replicas)
it locks the request's row (`FOR UPDATE`), and new requests for one account are added
under a transaction-level advisory lock on its name. The schema is made and kept up to
date by alembic (bot/store/migrations/) when the store is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot import approvals
from bot.accounts import Account
from bot.approvals import Admission, ChangeRequest, Outcome, Rules, Status, Verdict
from bot.database import Database
from bot.jobs import ANNOUNCE, Job, Kind, Note, drift_subject
from bot.readings import Drift, Reading, Source
from bot.store import readingtable
from bot.store.engine import ACCOUNT_LOCKS, SCHEMA, WRITE, make_engine, upgrade
from bot.store.engine import MIGRATIONS as MIGRATIONS
from bot.store.engine import database_url as database_url
from bot.store.jobtable import JobTable, close, enqueue, enqueue_claimed, owes_requester
from bot.store.schema import audit, decisions, drifts, requests, turns
from bot.store.schema import jobs as jobs_table
from okx import AccountConfig

# The jobs each kind of decision causes (SPEC §7), stored in the decision's transaction.
CAUSES: dict[Verdict, tuple[Kind, ...]] = {
    Verdict.APPROVED: (Kind.APPLY, Kind.UPDATE),  # the OKX write; "applying…" meanwhile
    Verdict.RECORDED: (Kind.UPDATE,),  # approvals so far
    Verdict.DENIED: ANNOUNCE,
    Verdict.EXPIRED: ANNOUNCE,
}


@dataclass(frozen=True)
class Added:
    """What `Store.add` did with a new request."""

    admission: Admission
    request: ChangeRequest  # the new request; for DUPLICATE and BUSY, the open one
    post_job: int | None = None  # the job that posts its approval message
    superseded: ChangeRequest | None = None


@dataclass(frozen=True)
class AuditEvent:
    at: float
    event: str
    actor: str
    request_id: str
    detail: dict[str, Any]


class Store:
    """Open with `await Store.open(path_or_url)`; close with `await store.aclose()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{WRITE: False})
        self._sqlite = engine.dialect.name == "sqlite"
        self._write_turn = asyncio.Lock() if self._sqlite else None
        self.jobs = JobTable(self._transaction, self.reading, skip_locked=not self._sqlite)

    @classmethod
    async def open(cls, where: Database | Path | str) -> Store:
        """The store, its schema migrated (one write-locked transaction)."""
        engine = make_engine(where)
        try:
            async with engine.execution_options(**{SCHEMA: True}).begin() as db:
                await db.run_sync(upgrade)
        finally:  # (the migrating connection had foreign keys off: not for reuse)
            await engine.dispose()
        return cls(engine)

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        """A round trip to the database (raises when it can't be reached)."""
        async with self.reading() as db:
            await db.execute(sa.text("SELECT 1"))

    async def take_turn(self, name: str, owner: str, now: float, until: float) -> bool:
        """Hold the turn `name` (a timer that runs on one replica at a time) until
        `until`: True when `owner` holds it now — it held it already, or the last
        holder's time ran out, or nobody ever held it."""
        async with self._transaction() as db:
            taken = await db.execute(turns.update().where(
                turns.c.name == name,
                sa.or_(turns.c.owner == owner, turns.c.until <= now))
                .values(owner=owner, until=until))
            if taken.rowcount:
                return True
            insert = (sqlite.insert if self._sqlite else postgresql.insert)(turns)
            added = await db.execute(insert.values(name=name, owner=owner, until=until)
                                     .on_conflict_do_nothing(index_elements=["name"])
                                     .returning(turns.c.name))
            return added.first() is not None

    async def give_up_turns(self, owner: str) -> None:
        """A replica that stops hands its turns on at once (instead of after they run out)."""
        async with self._transaction() as db:
            await db.execute(turns.update().where(turns.c.owner == owner).values(until=0))

    async def _account_turn(self, db: AsyncConnection, account: Account) -> None:
        """On PostgreSQL, one replica at a time adds a request for this account, until
        the transaction ends (SQLite's write lock covers the whole file already)."""
        if not self._sqlite:
            await db.execute(sa.text("SELECT pg_advisory_xact_lock(:c, hashtext(:name))"),
                             {"c": ACCOUNT_LOCKS, "name": account.name})

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps
        # in SQLite's busy handler (1, 2, 5, 10… ms): this process's writers queue here
        # instead, without sleeping.
        async with self._write_turn or contextlib.nullcontext(), self._engine.begin() as db:
            yield db

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.connect() as db:
            yield db

    # --- requests -----------------------------------------------------------
    async def add(self, request: ChangeRequest, now: float) -> Added:
        """Store a new request and the job that posts it, unless the account already has
        an open request (SPEC §3.3): then point to it, supersede it, or refuse."""
        async with self._transaction() as db:
            await self._account_turn(db, request.account)
            current = await self._open_request(db, request.account, now)
            admission = approvals.admit(current, request.desired)
            if admission in (Admission.DUPLICATE, Admission.BUSY):
                assert current is not None
                await self._audit(db, now, f"refused:{admission}", request.requester,
                                  current.id, account=request.account.name,
                                  desired=request.desired)
                return Added(admission, current)
            superseded = None
            if current is not None:
                superseded = current.moved_to(Status.SUPERSEDED, superseded_by=request.id)
                await self._set_status(db, superseded, now)
                await enqueue(db, now, current.id, Kind.UPDATE, Kind.TELL,
                              note=Note.SUPERSEDED)
                await self._audit(db, now, "superseded", request.requester, current.id,
                                  by=request.id)
            await db.execute(requests.insert().values(
                id=request.id, requester=request.requester, account=request.account.name,
                demo=int(request.account.demo), reason=request.reason,
                desired=int(request.desired), status=request.status.value,
                created_at=request.created_at, expires_at=request.expires_at,
                origin_channel=request.origin_channel,
                approval_channel=request.approval_channel, okx_uid=request.okx_uid,
                okx_label=request.okx_label, updated_at=now))
            await self._audit(db, now, "requested", request.requester, request.id,
                              account=request.account.name, desired=request.desired,
                              reason=request.reason)
            await enqueue(db, now, request.id, Kind.POST)
            post_job = (await db.execute(sa.select(sa.func.max(jobs_table.c.id)).where(
                jobs_table.c.request_id == request.id))).scalar_one()
            return Added(admission, request, int(post_job), superseded)

    async def applying(self, account: Account) -> ChangeRequest | None:
        """The account's approved request whose change is being applied, if any."""
        async with self.reading() as db:
            request_id = (await db.execute(sa.select(requests.c.id).where(
                requests.c.account == account.name,
                requests.c.status == Status.APPROVED.value))).scalar()
            return await self._load(db, request_id) if request_id else None

    @staticmethod
    async def _is_pending(db: AsyncConnection, request_id: str) -> bool:
        status = (await db.execute(sa.select(requests.c.status)
                                   .where(requests.c.id == request_id))).scalar()
        return bool(status == Status.PENDING.value)

    async def _open_request(self, db: AsyncConnection, account: Account,
                            now: float) -> ChangeRequest | None:
        """The account's open request; one past its TTL is expired here first."""
        request_id = (await db.execute(sa.select(requests.c.id).where(
            requests.c.account == account.name,
            requests.c.status.in_([s.value for s in approvals.OPEN]))
            .order_by(requests.c.created_at.desc()).limit(1))).scalar()
        request = await self._load(db, request_id, lock=True) if request_id else None
        if request is not None and (expired := approvals.expire(request, now)) is not None:
            await self._expire(db, expired, now)
            return None
        return request

    async def get(self, request_id: str) -> ChangeRequest | None:
        async with self.reading() as db:
            return await self._load(db, request_id)

    async def posted(self, job: Job, channel: str, ts: str, now: float) -> None:
        """The approval message is up: record where, and close its job."""
        async with self._transaction() as db:
            await db.execute(requests.update().where(requests.c.id == job.request_id)
                             .values(approval_channel=channel, approval_ts=ts, updated_at=now))
            await self._audit(db, now, "approval_posted", "", job.request_id,
                              channel=channel, ts=ts)
            owed = await owes_requester(db, job) and await self._is_pending(db, job.request_id)
            if await close(db, job, now) and owed:
                await enqueue(db, now, job.request_id, Kind.TELL, note=Note.POSTED)

    async def decide(self, request_id: str, user: str, approve: bool, now: float,
                     rules: Rules, *, claimant: tuple[str, float] | None = None
                     ) -> Outcome | None:
        """Apply one click atomically; None when there is no such request. With a
        `claimant` (worker owner, lease), an approval's OKX job is stored already claimed
        by it (`decide_claiming` returns that job too)."""
        decided = await self.decide_claiming(request_id, user, approve, now, rules,
                                             claimant=claimant)
        return decided[0] if decided else None

    async def decide_claiming(self, request_id: str, user: str, approve: bool, now: float,
                              rules: Rules, *, claimant: tuple[str, float] | None = None
                              ) -> tuple[Outcome, Job | None] | None:
        async with self._transaction() as db:
            request = await self._load(db, request_id, lock=True)
            if request is None:
                return None
            outcome = approvals.decide(request, user, approve, now, rules)
            claimed = None
            if outcome.changed:
                await self._save_outcome(db, request, outcome, user, approve, now)
                kinds = CAUSES[outcome.verdict]
                if claimant and Kind.APPLY in kinds:
                    claimed = await enqueue_claimed(db, now, request_id, Kind.APPLY,
                                                    *claimant)
                    kinds = tuple(kind for kind in kinds if kind is not Kind.APPLY)
                await enqueue(db, now, request_id, *kinds, notes={Kind.TELL: Note.RESULT})
            else:
                await self._audit(db, now, f"click_refused:{outcome.verdict}", user,
                                  request_id)
            return outcome, claimed

    async def finish(self, request: ChangeRequest, job: Job, now: float) -> bool:
        """Record the OKX result of an approved request (and what it says of the
        account's state: readings), close its job and add the jobs that announce it;
        False if it was finished already."""
        async with self._transaction() as db:
            await self._account_turn(db, request.account)  # (an observe waits for it)
            closed = await self._close(db, request, now, Status.APPROVED)
            if closed:  # (before the job closes: a request with open jobs is unannounced)
                await readingtable.record_change(db, request, now)
                await enqueue(db, now, request.id, *ANNOUNCE, notes={
                    Kind.TELL: Note.RESULT, Kind.THREAD: "resumed" if job.resumed else ""})
            await close(db, job, now)
            return closed

    async def abandon(self, request: ChangeRequest, job: Job, now: float) -> bool:
        """A pending request whose approval message can't be posted (the channel refuses
        the bot): failed, and its requester told — by the command's reply on the first
        attempt, by a job after a retry."""
        async with self._transaction() as db:
            closed = await self._close(db, request, now, Status.PENDING)
            if closed and await owes_requester(db, job):
                await enqueue(db, now, request.id, Kind.TELL, note=Note.NOT_POSTED)
            await close(db, job, now, request.error_code)
            return closed

    async def _close(self, db: AsyncConnection, request: ChangeRequest, now: float,
                     expected: Status) -> bool:
        result = await db.execute(
            requests.update()
            .where(requests.c.id == request.id, requests.c.status == expected.value)
            .values(status=request.status.value,
                    result=None if request.result is None else int(request.result),
                    error_code=request.error_code, error_text=request.error_text,
                    okx_uid=request.okx_uid, okx_label=request.okx_label,
                    updated_at=now))
        if result.rowcount:
            await self._audit(db, now, f"okx_{request.status}", "", request.id,
                              result=request.result, code=request.error_code)
        return bool(result.rowcount)

    async def expire_due(self, now: float) -> list[ChangeRequest]:
        """Move every pending request past its TTL to expired; returns those moved."""
        async with self._transaction() as db:
            ids = (await db.execute(
                sa.select(requests.c.id)
                .where(requests.c.status == Status.PENDING.value, requests.c.expires_at <= now)
                .order_by(requests.c.created_at).with_for_update())).scalars().all()
            expired = []
            for request_id in ids:
                request = await self._load(db, request_id)
                moved = approvals.expire(request, now) if request else None
                if moved is not None:
                    await self._expire(db, moved, now)
                    expired.append(moved)
            return expired

    async def cancel(self, request_id: str, user: str, now: float
                     ) -> tuple[ChangeRequest, bool] | None:
        """Withdraw a pending request (`user` may: the caller checked). Returns it as it
        is now, and whether this call cancelled it (no: it was no longer pending, or has
        just expired)."""
        async with self._transaction() as db:
            request = await self._load(db, request_id, lock=True)
            if request is None:
                return None
            if (expired := approvals.expire(request, now)) is not None:
                await self._expire(db, expired, now)
                return expired, False
            cancelled = approvals.cancel(request, user, now)
            if cancelled is None:
                return request, False
            await self._set_status(db, cancelled, now)
            await self._audit(db, now, "cancelled", user, request_id,
                              account=request.account.name)
            # The requester who cancels has the command's reply; anyone else tells them.
            told = ANNOUNCE if user != request.requester else (Kind.UPDATE, Kind.THREAD)
            await enqueue(db, now, request_id, *told, notes={Kind.TELL: Note.RESULT})
            return cancelled, True

    async def pending(self, accounts: list[str], now: float) -> list[ChangeRequest]:
        """Requests of these accounts waiting for approval (not past their TTL), oldest
        first."""
        return await self._select(requests.c.status == Status.PENDING.value,
                                  requests.c.expires_at > now,
                                  requests.c.account.in_(accounts))

    async def finished(self, accounts: list[str], count: int) -> list[ChangeRequest]:
        """The last `count` finished requests of these accounts, newest first."""
        async with self.reading() as db:
            ids = (await db.execute(
                sa.select(requests.c.id)
                .where(requests.c.status.not_in([s.value for s in approvals.OPEN]),
                       requests.c.account.in_(accounts))
                .order_by(requests.c.updated_at.desc(), requests.c.created_at.desc())
                .limit(count))).scalars().all()
            return [r for r in [await self._load(db, i) for i in ids] if r]

    async def _expire(self, db: AsyncConnection, expired: ChangeRequest, now: float) -> None:
        await self._set_status(db, expired, now)
        await self._audit(db, now, "expired", "", expired.id)
        await enqueue(db, now, expired.id, *ANNOUNCE, notes={Kind.TELL: Note.RESULT})

    async def with_status(self, status: Status) -> list[ChangeRequest]:
        return await self._select(requests.c.status == status.value)

    async def unannounced(self) -> list[ChangeRequest]:
        """Decided requests whose announcements have not all been made yet."""
        return await self._select(requests.c.status.not_in([s.value for s in approvals.OPEN]),
                                  requests.c.announced == 0)

    async def _select(self, *where: sa.ColumnElement[bool]) -> list[ChangeRequest]:
        async with self.reading() as db:
            ids = (await db.execute(sa.select(requests.c.id).where(*where)
                                    .order_by(requests.c.created_at))).scalars().all()
            return [r for r in [await self._load(db, i) for i in ids] if r]

    # --- readings and drifts (SPEC §9) ---------------------------------------
    async def readings(self, accounts: Sequence[Account]) -> dict[Account, Reading]:
        """The last known state of each of these accounts that has one."""
        async with self.reading() as db:
            return await readingtable.known(db, accounts)

    async def drifts(self, accounts: Sequence[Account], count: int) -> list[Drift]:
        """The last `count` drifts of these accounts, newest first."""
        async with self.reading() as db:
            return await readingtable.newest_drifts(db, accounts, count)

    async def drift(self, drift_id: int) -> Drift | None:
        async with self.reading() as db:
            return await readingtable.one_drift(db, drift_id)

    async def reading_version(self, account: Account) -> int:
        """Taken before a read is sent: `observe` records the read only if the account's
        reading is still at this version when it answers (0: never read)."""
        async with self.reading() as db:
            row = await readingtable.current(db, account)
            return int(row.version) if row else 0

    async def observe(self, account: Account, config: AccountConfig, now: float,
                      version: int, *, alert: bool = True) -> Drift | None:
        """Record a read of the account's configuration, taken at reading `version`; the
        drift (stored, audited, its alert job added) when the state differs from the
        last one known. Nothing is recorded when something else was recorded while the
        read was on the wire, or while a change of the bot's is in flight: either may
        explain the difference. An unknown state or another uid makes a new baseline."""
        async with self._transaction() as db:
            await self._account_turn(db, account)
            row = await readingtable.current(db, account)
            if (row.version if row else 0) != version or \
                    await readingtable.changing(db, account, config.uid):
                return None
            drift = None
            if alert and row is not None and row.auto_repay is not None \
                    and row.uid == config.uid and bool(row.auto_repay) != config.auto_repay:
                drift = await readingtable.add_drift(db, account, config, row, now)
                await self._audit(db, now, "drift", "", drift_subject(drift.id),
                                  account=account.name, demo=account.demo, uid=config.uid,
                                  was=drift.was, now=drift.auto_repay, was_at=drift.was_at)
                await enqueue(db, now, drift_subject(drift.id), Kind.DRIFT_ALERT)
            await readingtable.record(db, account, uid=config.uid,
                                      auto_repay=config.auto_repay, at=now,
                                      source=Source.READ)
            return drift

    async def drift_alerted(self, job: Job, drift_id: int, channel: str, ts: str,
                            now: float) -> None:
        """The drift's alert is up: record where (App Home links it), close its job."""
        async with self._transaction() as db:
            await db.execute(drifts.update().where(drifts.c.id == drift_id)
                             .values(alert_ts=ts))
            await self._audit(db, now, "drift_alerted", "", job.request_id,
                              channel=channel, ts=ts)
            await close(db, job, now)

    # --- audit --------------------------------------------------------------
    async def audit(self, event: str, actor: str = "", request_id: str = "", /, *,
                    now: float, **detail: Any) -> None:
        async with self._transaction() as db:
            await self._audit(db, now, event, actor, request_id, **detail)

    async def audit_events(self, request_id: str | None = None) -> list[AuditEvent]:
        query = sa.select(audit).order_by(audit.c.seq)
        if request_id:
            query = query.where(audit.c.request_id == request_id)
        async with self.reading() as db:
            rows = (await db.execute(query)).all()
        return [AuditEvent(r.at, r.event, r.actor, r.request_id, json.loads(r.detail))
                for r in rows]

    # --- helpers ------------------------------------------------------------
    async def _save_outcome(self, db: AsyncConnection, before: ChangeRequest,
                            outcome: Outcome, user: str, approve: bool, now: float) -> None:
        after = outcome.request
        if outcome.verdict is not approvals.Verdict.EXPIRED:
            # Replace this user's earlier decision (delete + insert, as INSERT OR REPLACE
            # did): the new one counts, in the order it was made.
            await db.execute(decisions.delete().where(decisions.c.request_id == after.id,
                                                      decisions.c.user_id == user))
            seq = (await db.execute(sa.select(sa.func.coalesce(sa.func.max(decisions.c.seq), 0))
                                    .where(decisions.c.request_id == after.id))).scalar_one()
            await db.execute(decisions.insert().values(request_id=after.id, user_id=user,
                                                       approve=int(approve), at=now,
                                                       seq=int(seq) + 1))
        if after.status is not before.status:
            await self._set_status(db, after, now)
        await self._audit(db, now, str(outcome.verdict), user, after.id,
                          approvals=len(after.approvers))

    @staticmethod
    async def _set_status(db: AsyncConnection, request: ChangeRequest, now: float) -> None:
        await db.execute(requests.update().where(requests.c.id == request.id)
                         .values(status=request.status.value, decided_by=request.decided_by,
                                 superseded_by=request.superseded_by, updated_at=now))

    @staticmethod
    async def _audit(db: AsyncConnection, now: float, event: str, actor: str,
                     request_id: str, /, **detail: Any) -> None:
        await db.execute(audit.insert().values(
            at=now, event=event, actor=actor, request_id=request_id,
            detail=json.dumps(detail, sort_keys=True)))

    async def _load(self, db: AsyncConnection, request_id: str, *,
                    lock: bool = False) -> ChangeRequest | None:
        query = sa.select(requests).where(requests.c.id == request_id)
        row = (await db.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            return None
        # In the order made (`seq`); decisions from before it existed have seq 0: by time,
        # and on SQLite those made at the same instant by their row order.
        order: list[sa.ColumnElement[Any]] = [decisions.c.seq, decisions.c.at]
        if self._sqlite:
            order.append(sa.literal_column("decisions.rowid"))
        approvers = tuple((await db.execute(
            sa.select(decisions.c.user_id)
            .where(decisions.c.request_id == request_id, decisions.c.approve == 1)
            .order_by(*order))).scalars())
        return ChangeRequest(
            id=row.id, requester=row.requester, account=Account(row.account, bool(row.demo)),
            desired=bool(row.desired), status=Status(row.status),
            created_at=row.created_at, expires_at=row.expires_at,
            origin_channel=row.origin_channel, approval_channel=row.approval_channel,
            approval_ts=row.approval_ts, approvers=approvers, decided_by=row.decided_by,
            result=None if row.result is None else bool(row.result),
            error_code=row.error_code, error_text=row.error_text,
            okx_uid=row.okx_uid, okx_label=row.okx_label, superseded_by=row.superseded_by,
            reason=row.reason)
