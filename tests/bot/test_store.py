"""The store: durable, migrated at start, one winner per transition; databases made by
the version before alembic are adopted with their requests and audit log."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.accounts import Account
from bot.approvals import Admission, ChangeRequest, Rules, Status, Verdict
from bot.jobs import Kind
from bot.store import MIGRATIONS, Store, make_engine
from bot.store.engine import HEAD
from tests.conftest import ON_BOTH_BACKENDS


def request(request_id: str = "ar-1") -> ChangeRequest:
    return ChangeRequest(id=request_id, requester="UALICE", account=Account.DEMO, desired=True,
                         status=Status.PENDING, created_at=1.0, expires_at=901.0,
                         origin_channel="COPS", approval_channel="CAPPR", okx_uid="42",
                         reason="hedge rolled")


@pytest.fixture
async def store(database: Path | str) -> AsyncIterator[Store]:
    opened = await Store.open(database)
    yield opened
    await opened.aclose()


def pragma(database: Path, name: str) -> object:
    with sqlite3.connect(database) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


async def test_round_trip_and_reopen(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "a.db")
    await store.add(request(), now=1.0)
    [post] = await store.jobs.claim(1.5, "me", 15.0, 10)
    await store.posted(post, "CAPPR", "123.456", now=2.0)
    await store.aclose()
    reopened = await Store.open(tmp_path / "a.db")  # migrations run again: nothing breaks
    loaded = await reopened.get("ar-1")
    assert loaded is not None
    assert loaded.account == Account.DEMO and loaded.approval_ts == "123.456"
    assert loaded.account.demo and loaded.reason == "hedge rolled"
    assert loaded.okx_uid == "42"
    events = await reopened.audit_events("ar-1")
    assert [e.event for e in events] == ["requested", "approval_posted"]
    await reopened.aclose()
    assert pragma(tmp_path / "a.db", "journal_mode") == "wal"


async def test_every_connection_is_durable_and_checks_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "a.db")
    async with engine.connect() as db:
        pragmas = [(await db.exec_driver_sql(f"PRAGMA {name}")).scalar()
                   for name in ("journal_mode", "synchronous", "foreign_keys")]
    await engine.dispose()
    assert pragmas == ["wal", 2, 1]  # synchronous=FULL is 2


@ON_BOTH_BACKENDS
async def test_many_concurrent_clicks_one_winner(store: Store) -> None:
    await store.add(request(), now=1.0)
    users = [f"U{n:03d}" for n in range(24)]
    outcomes = await asyncio.gather(*(store.decide("ar-1", u, True, 5.0, Rules())
                                      for u in users))
    verdicts = [o.verdict for o in outcomes if o is not None]
    assert verdicts.count(Verdict.APPROVED) == 1
    assert verdicts.count(Verdict.NOT_PENDING) == 23


@ON_BOTH_BACKENDS
async def test_two_processes_worth_of_connections_one_winner(database: Path | str) -> None:
    first, second = await Store.open(database), await Store.open(database)
    await first.add(request(), now=1.0)
    a, b = await asyncio.gather(first.decide("ar-1", "UBOB", True, 5.0, Rules()),
                                second.decide("ar-1", "UCAROL", True, 5.0, Rules()))
    assert a is not None and b is not None
    assert {a.verdict, b.verdict} == {Verdict.APPROVED, Verdict.NOT_PENDING}
    await first.aclose()
    await second.aclose()


@ON_BOTH_BACKENDS
async def test_replicas_adding_requests_for_one_account_at_once_leave_one_open(
        database: Path | str) -> None:
    stores = [await Store.open(database) for _ in range(3)]
    try:
        asks = [replace(request(f"ar-{n}"), desired=n % 2 == 0) for n in range(12)]
        added = await asyncio.gather(*(stores[n % 3].add(ask, now=1.0 + n / 1000)
                                       for n, ask in enumerate(asks)))
        assert added[0].admission is not None
        open_now = await stores[0].pending([Account.DEMO.name], now=2.0)
        assert len(open_now) == 1
        fresh = [a for a in added if a.admission is Admission.FRESH]
        superseding = [a for a in added if a.superseded is not None]
        assert len(fresh) == 1  # the rest were told about it, or took its place
        stored = {a.request.id for a in added
                  if a.admission not in (Admission.DUPLICATE, Admission.BUSY)}
        assert len(stored) == len(fresh) + len(superseding)
    finally:
        for store in stores:
            await store.aclose()


@ON_BOTH_BACKENDS
async def test_one_replica_at_a_time_holds_a_turn(database: Path | str) -> None:
    first, second = await Store.open(database), await Store.open(database)
    try:
        rounds = [await asyncio.gather(first.take_turn("expiry", "r0", 10.0 + n, 55.0),
                                       second.take_turn("expiry", "r1", 10.0 + n, 55.0))
                  for n in range(4)]
        assert rounds[0] in ([True, False], [False, True])
        assert all(won == rounds[0] for won in rounds)  # and it kept the turn
        winner = "r0" if rounds[0][0] else "r1"
        loser = "r1" if winner == "r0" else "r0"
        assert await first.take_turn("expiry", winner, 50.0, 95.0)  # renewed by its holder
        assert not await second.take_turn("expiry", loser, 94.0, 139.0)
        assert await second.take_turn("expiry", loser, 95.0, 140.0)  # ran out: taken over
        assert not await first.take_turn("expiry", winner, 96.0, 141.0)
        assert await first.take_turn("drift", winner, 96.0, 141.0)  # turns are separate
    finally:
        await first.aclose()
        await second.aclose()


@ON_BOTH_BACKENDS
async def test_two_replicas_claiming_at_once_never_share_a_job(database: Path | str) -> None:
    first, second = await Store.open(database), await Store.open(database)
    try:
        for n in range(20):
            await first.add(replace(request(f"ar-{n}"), account=Account(f"desk-{n}")), 1.0)
        claims = await asyncio.gather(*(s.jobs.claim(2.0, f"w{n}", 15.0, 3)
                                        for n, s in enumerate([first, second] * 5)))
        claimed = [job.id for jobs in claims for job in jobs]
        assert len(claimed) == len(set(claimed)) == 20
    finally:
        await first.aclose()
        await second.aclose()


@ON_BOTH_BACKENDS
async def test_approvers_keep_the_order_they_approved_in(store: Store) -> None:
    await store.add(request(), now=1.0)
    for user in ["UZED", "UAMY", "UMID"]:  # all at the same instant
        await store.decide("ar-1", user, True, 5.0, Rules(approvals_required=4))
    loaded = await store.get("ar-1")
    assert loaded is not None and loaded.approvers == ("UZED", "UAMY", "UMID")


@ON_BOTH_BACKENDS
async def test_finish_only_once(store: Store) -> None:
    await store.add(request(), now=1.0)
    outcome = await store.decide("ar-1", "UBOB", True, 5.0, Rules())
    assert outcome is not None
    done = outcome.request.moved_to(Status.DONE, result=True)
    [apply] = await store.jobs.claim(5.5, "me", 15.0, 10, [Kind.APPLY])
    assert await store.finish(done, apply, now=6.0) is True
    assert await store.finish(done, apply, now=7.0) is False
    stored = await store.get("ar-1")
    assert stored is not None and stored.status is Status.DONE and stored.result is True


@ON_BOTH_BACKENDS
async def test_expire_due(store: Store) -> None:
    await store.add(request("ar-1"), now=1.0)
    assert await store.expire_due(900.0) == []
    [expired] = await store.expire_due(901.0)
    assert expired.status is Status.EXPIRED
    assert await store.expire_due(2000.0) == []


@ON_BOTH_BACKENDS
async def test_unknown_request(store: Store) -> None:
    assert await store.decide("nope", "UBOB", True, 1.0, Rules()) is None


# --- databases made before alembic ------------------------------------------------------
# The old bot/store.py MIGRATIONS, verbatim: applied in order, with PRAGMA user_version
# counting them.
OLD_MIGRATIONS = [
    """
    CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        account TEXT NOT NULL CHECK (account IN ('live', 'demo')),
        desired INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        origin_channel TEXT NOT NULL,
        approval_channel TEXT NOT NULL DEFAULT '',
        approval_ts TEXT NOT NULL DEFAULT '',
        decided_by TEXT NOT NULL DEFAULT '',
        result INTEGER,
        error_code TEXT NOT NULL DEFAULT '',
        error_text TEXT NOT NULL DEFAULT '',
        okx_uid TEXT NOT NULL DEFAULT '',
        okx_label TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL
    );
    CREATE INDEX requests_by_status ON requests (status, expires_at);
    CREATE TABLE decisions (
        request_id TEXT NOT NULL REFERENCES requests (id),
        user_id TEXT NOT NULL,
        approve INTEGER NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (request_id, user_id)
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL DEFAULT '',
        request_id TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}'
    );
    """,
    """
    ALTER TABLE requests ADD COLUMN announced INTEGER NOT NULL DEFAULT 0;
    UPDATE requests SET announced = 1 WHERE status NOT IN ('pending', 'approved');
    """,
]


def old_database(path: Path, version: int) -> None:
    """A database as the version before alembic left it, at `version`, with a done
    request (approved by UBOB), a pending one, and their audit log."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for number, script in enumerate(OLD_MIGRATIONS[:version], start=1):
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
        if number == 1:
            rows = [("ar-done", "done", 1, 2.0, 1), ("ar-wait", "pending", None, 3.0, None)]
            for request_id, status, result, at, approved in rows:
                db.execute("INSERT INTO requests (id, requester, account, desired, status,"
                           " created_at, expires_at, origin_channel, approval_channel,"
                           " approval_ts, result, updated_at) VALUES (?, 'UALICE', 'live',"
                           " 1, ?, ?, 901.0, 'COPS', 'CAPPR', '1.2', ?, ?)",
                           (request_id, status, at, result, at))
                db.execute("INSERT INTO audit (at, event, actor, request_id, detail)"
                           " VALUES (?, 'requested', 'UALICE', ?, '{\"desired\": true}')",
                           (at, request_id))
                if approved:
                    db.execute("INSERT INTO decisions VALUES (?, 'UBOB', 1, ?)",
                               (request_id, at))
    db.close()


def schema(path: Path) -> dict[str, object]:
    """Tables, their columns (name, type, not null, default, primary key) and indexes."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT IN ('sqlite_sequence', 'alembic_version') ORDER BY name")]
        return {table: (
            [tuple(c[1:]) for c in db.execute(f"PRAGMA table_info({table})")],
            sorted(tuple(i[1:3]) for i in db.execute(f"PRAGMA index_list({table})")),
            [tuple(f[2:5]) for f in db.execute(f"PRAGMA foreign_key_list({table})")],
        ) for table in tables}


def normalised(columns: object) -> object:
    """Column types as SQLite's affinity sees them (REAL and FLOAT alike); primary key
    columns as never null (SQLAlchemy says NOT NULL, the old SQL left it implied)."""
    assert isinstance(columns, dict)
    return {table: ([(name, kind.replace("FLOAT", "REAL"), notnull or pk, default, pk)
                     for name, kind, notnull, default, pk in cols], indexes, keys)
            for table, (cols, indexes, keys) in columns.items()}


@pytest.mark.parametrize("version", [1, 2])
async def test_a_database_from_before_alembic_keeps_its_requests_and_audit(
        tmp_path: Path, version: int) -> None:
    old = tmp_path / "old.db"
    old_database(old, version)
    store = await Store.open(old)
    done, waiting = await store.get("ar-done"), await store.get("ar-wait")
    assert done is not None and done.status is Status.DONE and done.result is True
    assert done.approvers == ("UBOB",)
    assert waiting is not None and waiting.status is Status.PENDING
    assert await store.unannounced() == []  # the done one was announced back then
    events = await store.audit_events()
    assert [(e.event, e.request_id, e.detail) for e in events] == [
        ("requested", "ar-done", {"desired": True}), ("requested", "ar-wait", {"desired": True})]
    await store.audit("started", now=10.0)  # and it takes writes
    assert [e.event for e in await store.audit_events()][-1] == "started"
    await store.aclose()
    fresh = tmp_path / "fresh.db"
    await (await Store.open(fresh)).aclose()
    assert normalised(schema(old)) == normalised(schema(fresh))


async def test_the_announced_column_marks_old_decided_requests_announced(
        tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    old_database(old, 1)
    await (await Store.open(old)).aclose()
    with sqlite3.connect(old) as db:
        rows = dict(db.execute("SELECT id, announced FROM requests").fetchall())
    assert rows == {"ar-done": 1, "ar-wait": 0}


@ON_BOTH_BACKENDS
async def test_migrations_are_recorded_by_alembic(database: Path | str) -> None:
    await (await Store.open(database)).aclose()
    engine = make_engine(database)
    async with engine.connect() as db:
        versions = (await db.execute(sa.text("SELECT version_num FROM alembic_version"))
                    ).scalars().all()
    await engine.dispose()
    assert versions == ["0006"]


def test_the_head_the_engine_knows_is_alembics_head() -> None:
    """An up-to-date database is recognised without loading alembic (bot.store.engine
    HEAD): that shortcut must name the newest migration, or a new one would never run."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_a_bot_on_an_up_to_date_database_does_not_load_alembic(tmp_path: Path) -> None:
    code = ("import asyncio, sys; from pathlib import Path; from bot.store import Store\n"
            "async def main():\n    await (await Store.open(Path(sys.argv[1]))).aclose()\n"
            "asyncio.run(main()); print('alembic' in sys.modules)")
    db = str(tmp_path / "up-to-date.db")
    run = [sys.executable, "-c", code, db]
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert (first.stdout.strip(), second.stdout.strip()) == ("True", "False")


@ON_BOTH_BACKENDS
async def test_a_database_from_the_previous_version_gets_the_jobs_its_recovery_would_do(
        database: Path | str) -> None:
    """Version 0002 finished interrupted work by a start-up recovery; 0003 turns what it
    would have done into jobs, and supersedes all but the newest open request."""
    old = database
    engine = make_engine(old)
    async with engine.begin() as db:
        await db.run_sync(lambda sync: upgrade_to(sync, "0002"))
        rows = [  # id, account, status, created, approval ts, announced
            ("ar-apply", "live", "approved", 1.0, "1.1", 0),
            ("ar-older", "demo", "pending", 2.0, "2.2", 0),
            ("ar-post", "demo", "pending", 3.0, "", 0),
            ("ar-tell", "live", "denied", 0.5, "0.6", 0),
            ("ar-told", "live", "done", 0.2, "0.3", 1),
        ]
        for request_id, account, status, at, ts, announced in rows:
            await db.execute(sa.text(
                "INSERT INTO requests (id, requester, account, desired, status, created_at,"
                " expires_at, origin_channel, approval_channel, approval_ts, updated_at,"
                " announced) VALUES (:id, 'UALICE', :account, 1, :status, :at, 901.0,"
                " 'COPS', 'CAPPR', :ts, :at, :announced)"),
                {"id": request_id, "account": account, "status": status, "at": at,
                 "ts": ts, "announced": announced})
    await engine.dispose()
    store = await Store.open(old)
    jobs = {(job.request_id, job.kind, job.note) for job in await store.jobs.open_jobs()}
    assert jobs == {
        ("ar-apply", Kind.APPLY, ""),
        ("ar-post", Kind.POST, ""),
        ("ar-older", Kind.UPDATE, ""), ("ar-older", Kind.TELL, "superseded"),
        ("ar-tell", Kind.UPDATE, ""), ("ar-tell", Kind.THREAD, ""),
        ("ar-tell", Kind.TELL, "result"),
    }
    older = await store.get("ar-older")
    assert older is not None and older.status is Status.SUPERSEDED
    assert older.superseded_by == "ar-post"
    [post] = await store.jobs.claim(time.time() + 1, "me", 15.0, 10, [Kind.POST])
    assert post.is_retry  # so it looks for a message the old version may have posted
    await store.aclose()


@ON_BOTH_BACKENDS
async def test_a_database_from_the_previous_version_keeps_live_and_demo_apart(
        database: Path | str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Version 0003 knew two accounts by name only, with a CHECK allowing just those;
    0004 keeps the demo flag per request and takes any account name."""
    old = database
    engine = make_engine(old)
    async with engine.begin() as db:
        await db.run_sync(lambda sync: upgrade_to(sync, "0003"))
        for request_id, account, status in [("ar-live", "live", "done"),
                                            ("ar-demo", "demo", "pending")]:
            await db.execute(sa.text(
                "INSERT INTO requests (id, requester, account, desired, status, created_at,"
                " expires_at, origin_channel, approval_channel, approval_ts, updated_at,"
                " announced) VALUES (:id, 'UALICE', :account, 1, :status, 1.0, 901.0,"
                " 'COPS', 'CAPPR', '1.1', 1.0, 1)"),
                {"id": request_id, "account": account, "status": status})
        with pytest.raises(sa.exc.IntegrityError):  # what 0003 did with a new name
            async with db.begin_nested():
                await db.execute(sa.text(
                    "INSERT INTO requests (id, requester, account, desired, status,"
                    " created_at, expires_at, origin_channel, updated_at) VALUES"
                    " ('ar-no', 'UALICE', 'desk-a', 1, 'pending', 1.0, 901.0, 'COPS', 1.0)"))
    await engine.dispose()
    store = await Store.open(old)
    live, demo = await store.get("ar-live"), await store.get("ar-demo")
    assert live is not None and live.account == Account("live") == Account.LIVE
    assert not live.account.demo and live.status is Status.DONE and live.result is None
    assert demo is not None and demo.account == Account("demo", demo=True) == Account.DEMO
    assert demo.status is Status.PENDING and demo.reason == ""
    desk = ChangeRequest(id="ar-desk", requester="UALICE", account=Account("desk-a"),
                         desired=False, status=Status.PENDING, created_at=5.0,
                         expires_at=905.0, origin_channel="COPS", approval_channel="CAPPR",
                         reason="desk rolled")
    added = await store.add(desk, now=5.0)
    assert added.admission is Admission.FRESH and added.superseded is None
    stored = await store.get("ar-desk")
    assert stored is not None and stored.account == Account("desk-a")
    assert stored.reason == "desk rolled" and stored.status is Status.PENDING
    still = await store.get("ar-demo")  # another account's open request is not touched
    assert still is not None and still.status is Status.PENDING
    await store.aclose()
    fresh = fresh_database(database, tmp_path, request)
    await (await Store.open(fresh)).aclose()
    assert await inspected(old) == await inspected(fresh)


@ON_BOTH_BACKENDS
async def test_a_database_from_the_previous_version_keeps_its_decisions_in_order(
        database: Path | str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """0005 numbers decisions (PostgreSQL has no row order to fall back on): those made
    before keep their order by time, and new ones come after them."""
    engine = make_engine(database)
    async with engine.begin() as db:
        await db.run_sync(lambda sync: upgrade_to(sync, "0004"))
        await db.execute(sa.text(
            "INSERT INTO requests (id, requester, account, desired, status, created_at,"
            " expires_at, origin_channel, updated_at) VALUES"
            " ('ar-1', 'UALICE', 'live', 1, 'pending', 1.0, 901.0, 'COPS', 1.0)"))
        for user, at in [("UZED", 2.0), ("UAMY", 3.0)]:
            await db.execute(sa.text("INSERT INTO decisions VALUES ('ar-1', :u, 1, :at)"),
                             {"u": user, "at": at})
    await engine.dispose()
    store = await Store.open(database)
    await store.decide("ar-1", "UMID", True, 2.5, Rules(approvals_required=4))
    loaded = await store.get("ar-1")
    assert loaded is not None and loaded.approvers == ("UZED", "UAMY", "UMID")
    await store.aclose()
    fresh = fresh_database(database, tmp_path, request)
    await (await Store.open(fresh)).aclose()
    assert await inspected(database) == await inspected(fresh)


def fresh_database(like: Path | str, tmp_path: Path, request: pytest.FixtureRequest
                   ) -> Path | str:
    """Another empty database on the same backend as `like`."""
    if isinstance(like, Path):
        return tmp_path / "fresh.db"
    return str(request.getfixturevalue("postgres").new_database())


async def inspected(where: Path | str) -> dict[str, object]:
    """Each table's columns, indexes, foreign keys and checks, as the database reports
    them (on either backend)."""
    def read(connection: sa.Connection) -> dict[str, object]:
        seen = sa.inspect(connection)
        return {table: (
            sorted((c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                   for c in seen.get_columns(table)),
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                   for i in seen.get_indexes(table)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"])
                   for f in seen.get_foreign_keys(table)),
            sorted(str(c["sqltext"]) for c in seen.get_check_constraints(table)),
        ) for table in seen.get_table_names() if table != "alembic_version"}

    engine = make_engine(where)
    async with engine.connect() as db:
        found = await db.run_sync(read)
    await engine.dispose()
    return found


def upgrade_to(connection: sa.Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from bot.store import MIGRATIONS
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
