"""`python -m bot audit [--since DATE] [--until DATE] [--account NAME] [--format jsonl|csv]`:
the audit log on stdout, oldest first, for a file or a compliance tool.

Each record: `at` (UTC, ISO 8601 with milliseconds and `Z`), `event`, `actor` (Slack
user ID, empty for the bot itself), `request_id`, `account`, `detail` (an object; in CSV
its compact JSON text). DATE is `YYYY-MM-DD` or an ISO 8601 date-time (UTC unless it
has `Z` or an offset); `--since` includes its moment, `--until` excludes its moment, and
a bare date given to `--until` includes that whole day.

It needs only AUTOREPAY_DATABASE_URL or AUTOREPAY_DB (default `autorepay.db` in the
working directory), never creates or migrates a database, and reads in a read
transaction without the bot's process lock, so it runs beside the bot (or its replicas).
Exit codes:

    2    a bad flag, or no usable database at AUTOREPAY_DATABASE_URL / AUTOREPAY_DB
    130  Ctrl-C
    141  stdout closed before the end (`| head`): quietly, as a shell reports SIGPIPE
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from bot.database import PATH_VARIABLE, URL_VARIABLE, BadDatabaseUrl, Database
from bot.store import Store
from bot.store.auditlog import AuditRecord, audit_log
from bot.store.engine import make_engine

FORMATS = ("jsonl", "csv")
FIELDS = ("at", "event", "actor", "request_id", "account", "detail")
USAGE_EXIT = 2
INTERRUPTED_EXIT = 130
PIPE_CLOSED_EXIT = 141  # 128 + SIGPIPE
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
DATE_FORMS = ("a date (YYYY-MM-DD) or an ISO 8601 date-time "
              "(YYYY-MM-DDTHH:MM[:SS[.fff]], UTC unless it ends in Z or ±HH:MM)")


class UsageError(Exception):
    """A flag that can't be used; the message is one line saying which and why."""


def export_audit(environ: Mapping[str, str], *, since: str | None = None,
                 until: str | None = None, account: str | None = None,
                 fmt: str = "jsonl", out: TextIO | None = None) -> int:
    """Print the audit log; the exit code. Every failure is one line on stderr."""
    try:
        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
        start, end = window(since, until)
        if account is not None and not account.strip():
            raise UsageError("--account needs a name")
        records = asyncio.run(_read(the_database(environ), start, end, account))
    except UsageError as exc:
        return _stop(str(exc), USAGE_EXIT)
    except KeyboardInterrupt:
        return _stop("cancelled", INTERRUPTED_EXIT)
    return write(records, fmt, sys.stdout if out is None else out)


def window(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """The two bounds as epoch seconds (None: open); UsageError naming the flag."""
    start = None if since is None else parse_moment("--since", since, end=False)
    end = None if until is None else parse_moment("--until", until, end=True)
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--since {since} is not before --until {until}: no time is in "
                         "between")
    return start, end


def parse_moment(flag: str, text: str, *, end: bool) -> float:
    """`YYYY-MM-DD` (midnight UTC; for the end of a range, the midnight after that day) or
    an ISO 8601 date-time (naive means UTC), as epoch seconds."""
    value = text.strip().upper()  # (2026-11-25t10:00z is the same moment)
    try:
        if DATE.fullmatch(value):
            day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        if DATE_TIME.match(value):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    except (ValueError, OverflowError):
        pass
    raise UsageError(f"{flag} {text!r} is not {DATE_FORMS}")


def the_database(environ: Mapping[str, str]) -> Database:
    """The bot's database as its settings name it; a SQLite file must exist (relative:
    to the working directory). UsageError otherwise."""
    url = environ.get(URL_VARIABLE, "").strip()
    raw = environ.get(PATH_VARIABLE, "").strip()
    if url and raw:
        raise UsageError(f"{URL_VARIABLE} and {PATH_VARIABLE} are both set: keep one")
    try:
        database = Database.parse(url) if url else Database.sqlite(Path(raw or "autorepay.db"))
    except BadDatabaseUrl as exc:
        raise UsageError(str(exc)) from None
    if database.path is None:
        return database
    path = database.path.absolute()  # (as the bot opens it: no ~ expansion)
    if path.is_dir():
        raise UsageError(f"{database} is a folder ({path}), not a database file")
    if not path.is_file():
        raise UsageError(f"{database}: there is no database at {path} (set "
                         f"{database.variable} to the bot's database file)")
    return database


async def _read(database: Database, since: float | None, until: float | None,
                account: str | None) -> list[AuditRecord]:
    # Not Store.open: that migrates, and an export must not change the schema under a
    # running bot of another version. The columns read are in every version.
    store = Store(make_engine(database))
    try:
        return await audit_log(store, since=since, until=until, account=account)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise UsageError(f"{database} cannot be read as the bot's database: "
                         f"{database.describe(exc)}") from None
    finally:
        await store.aclose()


# --- output -----------------------------------------------------------------


def iso(at: float) -> str:
    """`2026-11-25T22:05:45.123Z`: UTC, milliseconds (cut, not rounded up)."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fields(record: AuditRecord) -> dict[str, Any]:
    return {"at": iso(record.at), "event": record.event, "actor": record.actor,
            "request_id": record.request_id, "account": record.account,
            "detail": record.detail}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # ASCII: \u escapes for the rest


def lines(records: Iterable[AuditRecord], fmt: str) -> Iterable[str]:
    if fmt == "jsonl":
        for record in records:
            yield compact(fields(record)) + "\n"
        return
    row = io.StringIO()  # one row at a time, so rows go out as they are made
    writer = csv.DictWriter(row, fieldnames=FIELDS)
    writer.writeheader()
    yield _take(row)
    for record in records:
        writer.writerow({**fields(record), "detail": compact(record.detail)})
        yield _take(row)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def write(records: list[AuditRecord], fmt: str, out: TextIO) -> int:
    """Write the records; a reader that stops early (`| head`) ends it quietly."""
    try:
        for line in lines(records, fmt):
            out.write(line)
        out.flush()
    except BrokenPipeError:
        # Python would flush stdout again at exit and report the same error: point the
        # descriptor at /dev/null so there is nothing left to fail.
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return PIPE_CLOSED_EXIT
    except KeyboardInterrupt:
        return _stop("cancelled", INTERRUPTED_EXIT)
    return 0


def _stop(message: str, exit_code: int) -> int:
    print(f"autorepay: {message}", file=sys.stderr)
    return exit_code
