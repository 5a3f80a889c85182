"""`python -m bot audit`: the audit log as a compliance export, read from a database the
store wrote, by a real process (beside a "running bot": its lock held, a write open)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import make_url

from bot.accounts import Account
from bot.approvals import ChangeRequest, Status
from bot.audit_cli import UsageError, export_audit, iso, parse_moment, window
from bot.cli import main
from bot.dblock import DatabaseLock
from bot.store import Store
from bot.store.auditlog import audit_log
from tests.bot.process import bot_process

ALICE, BOB = "U0ALICE01", "U0BOB0001"
DAY = datetime(2026, 11, 25, tzinfo=UTC).timestamp()  # 2026-11-25T00:00:00Z
HEADER = ["at", "event", "actor", "request_id", "account", "detail"]
NOTE = 'a, "quoted" note\nover two lines, é'
# (at, event, actor, request_id, account, detail) as the export should show each event
EXPECTED: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
    ("2026-11-24T23:00:00.000Z", "refused:busy", ALICE, "ar-gone", "retired",
     {"account": "retired", "desired": False}),
    ("2026-11-24T23:59:59.999Z", "requested", ALICE, "ar-1", "desk-a",
     {"account": "desk-a", "desired": True}),
    ("2026-11-25T00:00:00.000Z", "approved", BOB, "ar-1", "desk-a", {"approvals": 1}),
    ("2026-11-25T23:59:59.999Z", "accounts_changed", BOB, "", "paper",
     {"account": "paper", "note": NOTE}),
    ("2026-11-26T00:00:00.000Z", "started", "", "", "", {}),
]


async def write_events(database: Path | str) -> None:
    store = await Store.open(database)
    try:
        # A request of an account no longer configured: its events only name it in detail.
        await store.audit("refused:busy", ALICE, "ar-gone", now=DAY - 3600, account="retired",
                          desired=False)
        await store.add(ChangeRequest(
            id="ar-1", requester=ALICE, account=Account("desk-a"), desired=True,
            status=Status.PENDING, created_at=DAY - 0.001, expires_at=DAY + 900,
            origin_channel="C0OPS0001"), now=DAY - 0.001)
        await store.audit("approved", BOB, "ar-1", now=DAY, approvals=1)
        await store.audit("accounts_changed", BOB, now=DAY + 86399.999, account="paper",
                          note=NOTE)
        await store.audit("started", now=DAY + 86400)
    finally:
        await store.aclose()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory whose autorepay.db holds EXPECTED (made once: read only)."""
    path = tmp_path_factory.mktemp("audit")
    asyncio.run(write_events(path / "autorepay.db"))
    return path


def run(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = bot_process(["audit", *args], env or {}, folder)  # no Slack or OKX settings
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def shown(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The records as EXPECTED writes them (its details: the keys that matter here)."""
    keys = {(event, request_id): detail for _, event, _, request_id, _, detail in EXPECTED}
    return [(*(r[name] for name in HEADER[:-1]),
             {k: v for k, v in r["detail"].items() if k in keys[r["event"], r["request_id"]]})
            for r in records]


def jsonl(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def from_csv(out: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(out, newline=""))
    assert reader.fieldnames == HEADER
    return [{**row, "detail": json.loads(row["detail"])} for row in reader]


# --- real processes -----------------------------------------------------------


def test_jsonl_is_every_event_oldest_first_while_the_bot_holds_the_database(
        folder: Path) -> None:
    database = folder / "autorepay.db"
    lock = DatabaseLock(database)
    lock.acquire()  # the running bot's process lock: the export doesn't want it
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # and a write under way, not committed
        writer.execute("INSERT INTO audit (at, event) VALUES (?, 'uncommitted')", (DAY,))
        code, out, err = run(folder)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        lock.release()
    assert (code, err) == (0, "")
    assert shown(jsonl(out)) == EXPECTED
    assert all(line.startswith('{"at":') for line in out.splitlines())


def test_csv_has_a_header_and_the_same_records(folder: Path) -> None:
    code, out, err = run(folder, "--format", "csv")
    assert (code, err) == (0, "")
    assert shown(from_csv(out)) == EXPECTED  # the note's comma, quotes, newline survive


def test_a_day_is_from_its_midnight_to_the_next(folder: Path) -> None:
    code, out, err = run(folder, "--since", "2026-11-25", "--until", "2026-11-25")
    assert (code, err) == (0, "")
    assert shown(jsonl(out)) == EXPECTED[2:4]


def test_date_times_include_since_and_exclude_until(folder: Path) -> None:
    # 2026-11-24T23:00-01:00 is midnight UTC; naive means UTC
    code, out, err = run(folder, "--since", "2026-11-24T23:00:00-01:00",
                         "--until", "2026-11-25T23:59:59.999")
    assert (code, err) == (0, "")
    assert shown(jsonl(out)) == EXPECTED[2:3]


def test_account_filter_any_case_finds_requests_and_retired_accounts(folder: Path) -> None:
    code, out, err = run(folder, "--account", "DESK-A", "--format", "csv")
    assert (code, err) == (0, "")
    assert shown(from_csv(out)) == EXPECTED[1:3]  # "approved" knows it from its request
    code, out, _ = run(folder, "--account", "retired")  # not in AUTOREPAY_ACCOUNTS
    assert (code, shown(jsonl(out))) == (0, EXPECTED[:1])


def test_a_bad_date_is_one_line_and_exit_2(folder: Path) -> None:
    code, out, err = run(folder, "--since", "2026-11-25", "--until", "next tuesday")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "autorepay: --until 'next tuesday' is not a date (YYYY-MM-DD) or an ISO 8601 "
        "date-time (YYYY-MM-DDTHH:MM[:SS[.fff]], UTC unless it ends in Z or ±HH:MM)"]


async def test_a_reader_that_stops_early_ends_it_quietly(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "autorepay.db")
    for i in range(40):  # ~400 KB of output: more than a pipe holds
        await store.audit("noise", now=DAY + i, padding="x" * 10_000)
    await store.aclose()
    process = bot_process(["audit"], {}, tmp_path)
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["event"] == "noise"
    process.stdout.close()  # as `| head -1` does
    try:
        assert process.wait(timeout=30) == 141  # as a shell reports a SIGPIPE
        assert process.stderr.read() == ""  # no traceback, no "Exception ignored"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_postgresql_export_and_a_wrong_password_never_shows_it(
        postgres_url: str, tmp_path: Path) -> None:
    asyncio.run(write_events(postgres_url))
    code, out, err = run(tmp_path, env={"AUTOREPAY_DATABASE_URL": postgres_url})
    assert (code, err) == (0, "")
    assert shown(jsonl(out)) == [(*row[:5], row[5]) for row in EXPECTED]
    url = make_url(postgres_url)
    wrong = url.set(password="not-" + str(url.password))
    code, out, err = run(tmp_path, env={
        "AUTOREPAY_DATABASE_URL": wrong.render_as_string(hide_password=False)})
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("autorepay: AUTOREPAY_DATABASE_URL=postgresql://autorepay:***@")
    assert "cannot be read as the bot's database" in line and "password" in line
    for password in (str(url.password), str(wrong.password)):
        assert password not in err and quote(password, safe="") not in err


# --- in process ---------------------------------------------------------------


def test_missing_database_is_one_line_and_none_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert export_audit({}) == 2
    assert export_audit({"AUTOREPAY_DB": "data/bot.db"}, fmt="csv") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"autorepay: AUTOREPAY_DB='autorepay.db': there is no database at "
        f"{tmp_path / 'autorepay.db'} (set AUTOREPAY_DB to the bot's database file)",
        f"autorepay: AUTOREPAY_DB='data/bot.db': there is no database at "
        f"{tmp_path / 'data' / 'bot.db'} (set AUTOREPAY_DB to the bot's database file)"]
    assert list(tmp_path.iterdir()) == []


def test_the_database_can_be_named_in_dotenv(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".env").write_text(f"AUTOREPAY_DB={folder / 'autorepay.db'}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOREPAY_DB", "")  # (so that what .env sets is undone after)
    monkeypatch.delenv("AUTOREPAY_DB")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert main(["audit", "--until", "2026-11-24T23:59:59.999Z", "--format", "csv"]) == 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    out, err = capsys.readouterr()
    assert (shown(from_csv(out)), err) == (EXPECTED[:1], "")


def test_a_file_that_is_not_the_bots_database_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.db").write_text("not a database " * 100)
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    for name in ("notes.db", "other.db"):
        assert export_audit({"AUTOREPAY_DB": str(tmp_path / name)}) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "file is not a database" in err[0] and "no such table: audit" in err[1]


def test_an_empty_audit_log_is_a_header_or_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(write_nothing(tmp_path / "a.db"))
    environ = {"AUTOREPAY_DB": str(tmp_path / "a.db")}
    assert export_audit(environ, fmt="csv") == 0
    assert capsys.readouterr() == (",".join(HEADER) + "\r\n", "")
    assert export_audit(environ, since="2026-01-01") == 0
    assert capsys.readouterr() == ("", "")


async def write_nothing(database: Path) -> None:
    await (await Store.open(database)).aclose()


@pytest.mark.parametrize(("text", "end", "expected"), [
    ("2026-11-25", False, DAY),
    ("2026-11-25", True, DAY + 86400),  # a bare --until date includes that day
    ("2026-11-25T22:05:45.123Z", False, DAY + 79545.123),
    ("2026-11-25t22:05:45.123z", True, DAY + 79545.123),  # a date-time is exact either way
    ("2026-11-25 22:05", False, DAY + 79500),  # naive: UTC
    ("2026-11-25T23:05:45+01:00", False, DAY + 79545),
    (" 2026-11-25T22:05:45.123456 ", False, DAY + 79545.123456),
])
def test_moments(text: str, end: bool, expected: float) -> None:
    assert parse_moment("--since", text, end=end) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "25/11/2026", "20261125",
                                  "2026-11-25T25:00", "2026-11-25T10", "yesterday", ""])
def test_bad_moments_name_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--since .* is not a date \(YYYY-MM-DD\)"):
        parse_moment("--since", text, end=False)


def test_window() -> None:
    assert window(None, None) == (None, None)
    assert window("2026-11-25", "2026-11-25") == (DAY, DAY + 86400)
    for since, until in (("2026-11-26", "2026-11-25"),
                         ("2026-11-25T10:00Z", "2026-11-25T10:00Z")):
        with pytest.raises(UsageError, match=f"^--since {since} is not before --until"):
            window(since, until)
    with pytest.raises(UsageError, match=r"^--until '9999-12-31' is not a date"):
        window(None, "9999-12-31")  # (its day ends in the year 10000)


def test_times_show_milliseconds_cut_not_rounded() -> None:
    assert iso(DAY + 79545.123) == "2026-11-25T22:05:45.123Z"
    assert iso(DAY + 86399.9996) == "2026-11-25T23:59:59.999Z"
    assert iso(0) == "1970-01-01T00:00:00.000Z"


async def test_a_time_copied_from_the_export_selects_exactly_its_events(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "a.db")
    # times as time.time() makes them: not a whole number of milliseconds, and floats
    times = [1764108345.1229999, 1764108345.123, 1764108345.1234567, 1764108345.1239996]
    try:
        for at in times:
            await store.audit("tick", now=at)
        for at in times:
            shown_as = parse_moment("--since", iso(at), end=False)
            after = await audit_log(store, since=shown_as)
            before = await audit_log(store, until=shown_as)
            assert iso(after[0].at) == iso(at)
            assert all(iso(r.at) < iso(at) for r in before)
            assert len(after) + len(before) == len(times)
    finally:
        await store.aclose()
