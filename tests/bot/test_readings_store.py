"""The store's side of the drift watch: readings, drifts, and what the bot's own changes
say of an account (bot.store.observe / finish), on both backends."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.accounts import Account
from bot.approvals import ChangeRequest, Rules, Status
from bot.jobs import Kind, drift_of, drift_subject
from bot.readings import Source
from bot.store import Store, make_engine
from bot.store.schema import metadata
from okx import AccountConfig
from tests.bot.test_store import upgrade_to
from tests.conftest import ON_BOTH_BACKENDS

pytestmark = ON_BOTH_BACKENDS
DESK = Account("desk-a")
PAPER = Account("desk-a", demo=True)  # the same name on demo trading: another account


def config(auto_repay: bool, uid: str = "4488") -> AccountConfig:
    return AccountConfig(uid=uid, acct_lv="1", enable_spot_borrow=True,
                         auto_repay=auto_repay, perm=("read_only", "trade"), label="")


def request(desired: bool, request_id: str = "ar-1") -> ChangeRequest:
    return ChangeRequest(id=request_id, requester="UALICE", account=DESK, desired=desired,
                         status=Status.PENDING, created_at=1.0, expires_at=901.0,
                         origin_channel="COPS", approval_channel="CAPPR", okx_uid="4488")


@pytest.fixture
async def store(database: Path | str) -> AsyncIterator[Store]:
    opened = await Store.open(database)
    yield opened
    await opened.aclose()


async def read(store: Store, account: Account, state: bool, now: float,
               uid: str = "4488") -> object:
    """One read as the watch makes it: the version first, then the answer recorded."""
    version = await store.reading_version(account)
    return await store.observe(account, config(state, uid), now, version)


async def approved(store: Store, desired: bool, request_id: str = "ar-1") -> ChangeRequest:
    await store.add(request(desired, request_id), now=2.0)
    outcome = await store.decide(request_id, "UBOB", True, 3.0, Rules())
    assert outcome is not None and outcome.request.status is Status.APPROVED
    return outcome.request


async def finish(store: Store, final: ChangeRequest) -> None:
    [apply] = await store.jobs.claim(4.0, "me", 15.0, 10, [Kind.APPLY])
    assert await store.finish(final, apply, now=5.0)


async def test_the_first_read_is_the_baseline(store: Store) -> None:
    assert await store.reading_version(DESK) == 0
    assert await read(store, DESK, True, 10.0) is None
    reading = (await store.readings([DESK, PAPER]))[DESK]
    assert (reading.uid, reading.auto_repay, reading.read_at) == ("4488", True, 10.0)
    assert reading.source is Source.READ
    assert await store.reading_version(DESK) == 1
    assert PAPER not in await store.readings([DESK, PAPER])
    assert await store.drifts([DESK], 10) == []


async def test_a_different_state_is_a_drift_once(store: Store) -> None:
    await read(store, DESK, True, 10.0)
    assert await read(store, DESK, True, 20.0) is None  # the same: only read_at moves
    assert (await store.readings([DESK]))[DESK].read_at == 20.0
    drift = await read(store, DESK, False, 30.0)
    assert drift is not None and drift == (await store.drifts([DESK], 10))[0]
    assert (drift.auto_repay, drift.was, drift.was_at, drift.at, drift.uid) == (
        False, True, 20.0, 30.0, "4488")
    assert await read(store, DESK, False, 40.0) is None  # found once, not every round
    [alert] = await store.jobs.open_jobs(drift_subject(drift.id))
    assert alert.kind is Kind.DRIFT_ALERT and drift_of(alert.request_id) == drift.id
    [event] = [e for e in await store.audit_events() if e.event == "drift"]
    assert event.request_id == drift_subject(drift.id)
    assert event.detail == {"account": "desk-a", "demo": False, "uid": "4488", "was": True,
                            "now": False, "was_at": 20.0}


async def test_drifts_are_listed_newest_first_per_account(store: Store) -> None:
    for account in (DESK, PAPER):
        await read(store, account, False, 1.0)
    for n, state in enumerate([True, False, True], start=2):
        await read(store, DESK, state, float(n))
    await read(store, PAPER, True, 9.0)
    assert [d.at for d in await store.drifts([DESK], 10)] == [4.0, 3.0, 2.0]
    assert [d.at for d in await store.drifts([DESK], 2)] == [4.0, 3.0]
    assert [(d.account, d.at) for d in await store.drifts([PAPER], 10)] == [(PAPER, 9.0)]
    assert len(await store.drifts([DESK, PAPER], 10)) == 4
    assert await store.drifts([], 10) == []


async def test_a_read_that_crossed_another_record_is_dropped(store: Store) -> None:
    await read(store, DESK, True, 10.0)
    slow = await store.reading_version(DESK)  # sent, still on the wire…
    await read(store, DESK, True, 11.0)  # …while another read was recorded
    assert await store.observe(DESK, config(False), 12.0, slow) is None
    assert (await store.readings([DESK]))[DESK].auto_repay is True
    assert await store.drifts([DESK], 10) == []


async def test_nothing_is_recorded_while_a_change_of_the_bots_is_in_flight(
        store: Store) -> None:
    await read(store, DESK, False, 1.0)
    await approved(store, True)
    before = await store.reading_version(DESK)
    assert await read(store, DESK, True, 4.0) is None  # the bot's own write, seen early
    assert await store.reading_version(DESK) == before
    assert await read(store, PAPER, True, 4.0) is None  # another account: recorded
    assert await store.reading_version(PAPER) == 1


async def test_a_read_sent_before_the_bots_change_ended_is_dropped(store: Store) -> None:
    await read(store, DESK, False, 1.0)
    change = await approved(store, True)
    on_the_wire = await store.reading_version(DESK)
    await finish(store, change.moved_to(Status.DONE, result=True))
    assert await store.observe(DESK, config(False), 6.0, on_the_wire) is None
    reading = (await store.readings([DESK]))[DESK]
    assert (reading.auto_repay, reading.source) == (True, Source.CHANGE)
    assert await read(store, DESK, True, 7.0) is None  # agrees with the change
    assert await read(store, DESK, False, 8.0) is not None  # then someone switched it back


async def test_a_write_whose_outcome_is_unknown_makes_the_next_read_a_baseline(
        store: Store) -> None:
    await read(store, DESK, False, 1.0)
    change = await approved(store, True)
    await finish(store, change.moved_to(Status.FAILED, error_code="network",
                                        error_text="no answer"))
    assert DESK not in await store.readings([DESK])
    assert await read(store, DESK, True, 6.0) is None  # it went through after all
    assert (await store.readings([DESK]))[DESK].auto_repay is True
    assert await store.drifts([DESK], 10) == []


async def test_a_refused_write_leaves_the_reading(store: Store) -> None:
    await read(store, DESK, False, 1.0)
    change = await approved(store, True)
    await finish(store, change.moved_to(Status.FAILED, error_code="51010",
                                        error_text="account mode"))
    assert (await store.readings([DESK]))[DESK].auto_repay is False
    assert await read(store, DESK, True, 6.0) is not None  # so this is someone else's


async def test_a_mismatch_records_what_okx_read_back(store: Store) -> None:
    await read(store, DESK, False, 1.0)
    change = await approved(store, True)
    await finish(store, change.moved_to(Status.FAILED, result=False, error_code="mismatch"))
    reading = (await store.readings([DESK]))[DESK]
    assert (reading.auto_repay, reading.source) == (False, Source.CHANGE)


async def test_another_uid_is_a_new_baseline(store: Store) -> None:
    await read(store, DESK, False, 1.0)
    assert await read(store, DESK, True, 2.0, uid="9999") is None  # another key, another account
    assert (await store.readings([DESK]))[DESK].uid == "9999"


async def test_a_drift_alert_job_runs_without_a_request(store: Store) -> None:
    await read(store, DESK, False, 1.0)
    drift = await read(store, DESK, True, 2.0)
    assert drift is not None
    [job] = await store.jobs.claim(3.0, "me", 15.0, 10)
    assert job.kind is Kind.DRIFT_ALERT
    await store.drift_alerted(job, drift.id, "CAPPR", "1700000000.000100", now=4.0)
    assert await store.jobs.open_jobs() == []
    stored = await store.drift(drift.id)
    assert stored is not None and stored.alert_ts == "1700000000.000100"
    assert await store.drift(drift.id + 100) is None


async def test_schema_py_says_what_the_migrations_make(store: Store, database: Path | str
                                                       ) -> None:
    engine = make_engine(database)
    async with engine.connect() as db:
        differences = await db.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    await engine.dispose()
    assert differences == []


async def test_jobs_of_the_previous_version_keep_their_ids(database: Path | str) -> None:
    engine = make_engine(database)
    async with engine.begin() as db:
        await db.run_sync(lambda sync: upgrade_to(sync, "0005"))
        await db.execute(sa.text(
            "INSERT INTO requests (id, requester, account, desired, status, created_at,"
            " expires_at, origin_channel, updated_at) VALUES"
            " ('ar-1', 'UALICE', 'live', 1, 'approved', 1.0, 901.0, 'COPS', 1.0)"))
        for _ in range(2):
            await db.execute(sa.text(
                "INSERT INTO jobs (request_id, kind, created_at, due_at) VALUES"
                " ('ar-1', 'okx_apply', 1.0, 1.0)"))
        if isinstance(database, Path):  # a job made and then gone: its id stays used
            await db.execute(sa.text("UPDATE sqlite_sequence SET seq = 9 WHERE name = 'jobs'"))
    await engine.dispose()
    store = await Store.open(database)
    assert [job.id for job in await store.jobs.open_jobs()] == [1, 2]
    await read(store, DESK, False, 1.0)
    drift = await read(store, DESK, True, 2.0)  # its alert job has no request row
    assert drift is not None
    [alert] = await store.jobs.open_jobs(drift_subject(drift.id))
    assert alert.id > (9 if isinstance(database, Path) else 2)
    await store.aclose()
    if isinstance(database, Path):
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
