"""Where the state lives (SPEC §5): AUTOREPAY_DATABASE_URL and AUTOREPAY_DB, read into
Settings; every refusal one line naming the variable, and the password never shown, in
either form (as it is, or URL-encoded), wherever the value might surface."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from bot.app import lock_database, open_store
from bot.config import ConfigError, Settings, load_settings, read_settings
from bot.database import BadDatabaseUrl, Database
from bot.dblock import DatabaseInUse, DatabaseLock
from tests.bot.process import refused_port

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret-signing",
    "AUTOREPAY_APPROVAL_CHANNEL": "C0APPROVE", "AUTOREPAY_REQUESTERS": "U0ALICE01",
    "AUTOREPAY_APPROVERS": "U0BOB0001",
}
URL_VARIABLE = "AUTOREPAY_DATABASE_URL"
# Every character that must be percent-encoded in a URL's password, and a space.
PASSWORD = "Vq7@db/pa%ss:w0rd#?+ k9"
ENCODED = quote(PASSWORD, safe="")
FORMS = (PASSWORD, ENCODED, quote_plus(PASSWORD), quote(PASSWORD))  # none may show


def hidden(*texts: str) -> None:
    """The password appears in none of `texts`, in any of its forms."""
    for text in texts:
        for form in FORMS:
            assert form not in text, f"the password ({form!r}) is shown in: {text}"


def url_problems(environ: dict[str, str]) -> list[str]:
    """The problems that name AUTOREPAY_DATABASE_URL (there must be some)."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    problems = caught.value.problems
    hidden(str(caught.value), *problems)
    for problem in problems:
        assert "\n" not in problem
    mine = [p for p in problems if URL_VARIABLE in p]
    assert mine, problems
    return mine


# --- PostgreSQL URLs that are accepted ----------------------------------------------------
@pytest.mark.parametrize(("raw", "shown"), [
    (f"postgresql://bot:{ENCODED}@db.internal:5432/autorepay",
     "postgresql://bot:***@db.internal:5432/autorepay"),
    (f"postgres://bot:{ENCODED}@db.internal:5432/autorepay",  # Heroku's spelling
     "postgresql://bot:***@db.internal:5432/autorepay"),
    (f"postgresql://bot:{ENCODED}@db.internal/autorepay",  # default port
     "postgresql://bot:***@db.internal/autorepay"),
    (f"  postgresql://bot:{ENCODED}@10.0.0.7:6432/ar  ",  # spaces around it (a .env line)
     "postgresql://bot:***@10.0.0.7:6432/ar"),
])
def test_postgresql_url_is_accepted_and_its_password_never_shown(raw: str, shown: str) -> None:
    settings = load_settings({**GOOD, URL_VARIABLE: raw})
    database = settings.database
    assert database.url.password == PASSWORD  # decoded: what the server is sent
    assert database.url.drivername == "postgresql+psycopg"
    assert not database.is_sqlite and database.path is None
    assert database.shown == shown
    assert str(database) == f"{URL_VARIABLE}={shown}"
    hidden(repr(settings), str(settings), str(database), repr(database), database.shown)
    assert lock_database(database) is None  # replicas share it: no file lock


def test_settings_repr_holds_no_url_at_all() -> None:
    settings = load_settings({**GOOD, URL_VARIABLE: f"postgresql://bot:{ENCODED}@db/ar"})
    assert "database_url" not in repr(settings)
    hidden(repr(settings))


# --- refused, with one line that says why and never holds the value ------------------
@pytest.mark.parametrize(("raw", "why"), [
    (f"mysql://bot:{ENCODED}@db.internal:3306/autorepay",
     "must start with postgresql:// or sqlite:/// (got mysql://…)"),
    (f"postgresql+asyncpg://bot:{ENCODED}@db/autorepay", "must start with postgresql://"),
    (f"postgresql://bot:{ENCODED}@db.internal:notaport/autorepay", "is not a database URL"),
    (f"postgresql://bot:{ENCODED}@db.internal:5432/", "names no database"),
    (f"postgresql://bot:{ENCODED}@db.internal:5432", "names no database"),
    (f"bot:{ENCODED}@db.internal:5432/autorepay", "is not a database URL"),  # no scheme
    ("sqlite://", "names no SQLite file"),  # in memory: gone with the process
    ("sqlite:///:memory:", "names no SQLite file"),
])
def test_unusable_url_is_one_line_naming_the_variable_without_the_value(
        raw: str, why: str) -> None:
    [problem] = url_problems({**GOOD, URL_VARIABLE: raw})
    assert problem.startswith(URL_VARIABLE) and why in problem, problem
    assert "postgresql://USER:PASSWORD@HOST:PORT/DATABASE" in problem \
        or "sqlite:///" in problem  # says what to write instead
    assert "db.internal" not in problem  # not even the harmless parts of the value
    settings, _ = read_settings({**GOOD, URL_VARIABLE: raw})
    assert settings.database_url == ""  # nothing half-read is kept
    hidden(repr(settings))


@pytest.mark.parametrize("raw", [
    f"postgresql://u:{ENCODED}@host:notaport/db",
    f"mysql://u:{ENCODED}@host/db",
    f"postgresql://u:{ENCODED}@host/",
])
def test_the_refusal_carries_no_exception_that_holds_the_value(raw: str) -> None:
    """A traceback of BadDatabaseUrl (should one ever be logged) shows no URL either:
    SQLAlchemy's own parse error quotes it whole."""
    with pytest.raises(BadDatabaseUrl) as caught:
        Database.parse(raw)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    hidden(str(error), repr(error), *map(str, error.args))


@pytest.mark.parametrize("password", ["s3cret/Tail9x", "se:Tail9x", "p#Tail9x", "p%Tail9x",
                                      "hunter2@Tail9x", "ab@cd/efTail9x"])
def test_a_password_written_without_percent_encoding_is_not_shown_in_part(
        password: str) -> None:
    """An operator who pastes the password as it is: no part of it may be repeated back
    (with an `@` in it, what follows the `@` would otherwise be taken for the host name
    and shown, in the start-up message and in the driver's "can't resolve" words)."""
    raw = f"postgresql://bot:{password}@db.internal:5432/autorepay"
    settings, problems = read_settings({**GOOD, URL_VARIABLE: raw})
    shown = [*problems, repr(settings)]
    if not problems:
        shown += [str(settings.database), repr(settings.database), settings.database.shown]
    for text in shown:
        assert password not in text and "Tail9x" not in text, text


def test_both_variables_set_is_a_problem() -> None:
    [problem] = url_problems({**GOOD, URL_VARIABLE: f"postgresql://bot:{ENCODED}@db/ar",
                              "AUTOREPAY_DB": "/var/lib/autorepay/autorepay.db"})
    assert "AUTOREPAY_DB" in problem and "both set" in problem
    assert "/var/lib/autorepay" not in problem


def test_empty_url_means_the_sqlite_file() -> None:
    for environ in (GOOD, {**GOOD, URL_VARIABLE: ""}, {**GOOD, URL_VARIABLE: "   "}):
        database = load_settings(environ).database
        assert database.is_sqlite and database.path == Path("autorepay.db")
        assert database.variable == "AUTOREPAY_DB"
        assert str(database) == "AUTOREPAY_DB='autorepay.db'"


def test_autorepay_db_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    database = load_settings({**GOOD, "AUTOREPAY_DB": str(path)}).database
    assert database.path == path and str(database) == f"AUTOREPAY_DB='{path}'"


# --- sqlite:/// forms ---------------------------------------------------------------------
def test_sqlite_url_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state").mkdir()
    for raw, path in (("sqlite:///state/bot.db", Path("state/bot.db")),
                      ("sqlite:///bot.db", Path("bot.db"))):
        database = load_settings({**GOOD, URL_VARIABLE: raw}).database
        assert database.is_sqlite and database.path == path
        assert database.variable == URL_VARIABLE and str(database) == f"{URL_VARIABLE}={raw}"


def test_sqlite_url_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    raw = f"sqlite:///{path}"  # four slashes: sqlite:////tmp/…
    assert raw.startswith("sqlite:////")
    database = load_settings({**GOOD, URL_VARIABLE: raw}).database
    assert database.path == path and path.is_absolute()
    assert str(database) == f"{URL_VARIABLE}={raw}"


def test_sqlite_url_with_a_missing_folder_is_a_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    [problem] = url_problems({**GOOD, URL_VARIABLE: "sqlite:///nowhere/bot.db"})
    assert problem == f"{URL_VARIABLE}=sqlite:///nowhere/bot.db: folder 'nowhere' does " \
                      "not exist"
    missing = tmp_path / "gone" / "bot.db"
    [problem] = url_problems({**GOOD, URL_VARIABLE: f"sqlite:///{missing}"})
    assert f"folder '{missing.parent}' does not exist" in problem


def test_sqlite_url_naming_a_folder_is_a_problem(tmp_path: Path) -> None:
    [problem] = url_problems({**GOOD, URL_VARIABLE: f"sqlite:///{tmp_path}"})
    assert problem.endswith("is a folder, not a database file")


def test_sqlite_url_file_is_locked_like_autorepay_db(tmp_path: Path) -> None:
    database = load_settings({**GOOD, URL_VARIABLE: f"sqlite:///{tmp_path}/bot.db"}).database
    lock = lock_database(database)
    assert lock is not None
    try:
        with pytest.raises(ConfigError) as caught:
            lock_database(database)
        [problem] = caught.value.problems
        assert problem.startswith(f"{URL_VARIABLE}=sqlite:///") and "one bot process" in problem
    finally:
        lock.release()


# --- AUTOREPAY_LEASE_SECONDS ----------------------------------------------------------------
@pytest.mark.parametrize(("raw", "seconds"), [(None, 15), ("5", 5), ("60", 60),
                                              ("3600", 3600), (" 30 ", 30)])
def test_lease_seconds_within_bounds(raw: str | None, seconds: int) -> None:
    environ = GOOD if raw is None else {**GOOD, "AUTOREPAY_LEASE_SECONDS": raw}
    assert load_settings(environ).lease_seconds == seconds


@pytest.mark.parametrize("raw", ["4", "0", "3601", "-5", "1.5", "ten", "15s"])
def test_lease_seconds_out_of_bounds(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "AUTOREPAY_LEASE_SECONDS": raw})
    assert caught.value.problems == [
        f"AUTOREPAY_LEASE_SECONDS={raw!r} must be a whole number from 5 to 3600"]


def test_every_problem_at_once_with_the_database_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, URL_VARIABLE: f"mysql://bot:{ENCODED}@db/x",
                       "AUTOREPAY_LEASE_SECONDS": "2", "PORT": "0"})
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert [p.split("=")[0].split(" ")[0] for p in problems].count(URL_VARIABLE) == 1
    hidden(*problems)


# --- the driver's words, redacted (Database.describe) ----------------------------------------
def database_of(raw: str = f"postgresql://bot:{ENCODED}@db.internal:5432/ar") -> Database:
    return Database.parse(raw)


def test_describe_takes_the_password_out_of_the_driver_words() -> None:
    database = database_of()
    orig = Exception(f'connection to "db" failed: FATAL: bad password "{PASSWORD}"\n'
                     f"  (url had {ENCODED}, form {quote_plus(PASSWORD)})")
    wrapped = sa.exc.OperationalError("SELECT 1", {}, orig)
    for exc in (wrapped, orig, OSError(f"no route for {PASSWORD}")):
        text = database.describe(exc)
        hidden(text)
        assert "***" in text and "\n" not in text
    assert database.describe(wrapped).startswith('connection to "db" failed')
    assert "SELECT 1" not in database.describe(wrapped)  # only the driver's words


def test_describe_without_words_names_the_error() -> None:
    assert database_of().describe(TimeoutError()) == "TimeoutError"


def test_redact_with_no_password_changes_nothing() -> None:
    database = database_of("postgresql://bot@db/ar")
    assert database.redact("nothing to hide") == "nothing to hide"
    assert Database.sqlite(Path("x.db")).redact("x.db failed") == "x.db failed"


async def test_open_store_on_a_server_that_refuses_says_so_without_the_password() -> None:
    with refused_port() as port:
        database = database_of(f"postgresql://bot:{ENCODED}@127.0.0.1:{port}/autorepay")
        with pytest.raises(ConfigError) as caught:
            await open_store(database)
    [problem] = caught.value.problems
    assert problem.startswith(f"{URL_VARIABLE}=postgresql://bot:***@127.0.0.1:{port}/"
                              "autorepay cannot be used: "), problem
    assert "\n" not in problem and "Traceback" not in problem
    hidden(problem)


def test_settings_built_by_hand_parse_lazily() -> None:
    """Settings made in code (the tests' harness does) carry the URL as a string."""
    settings = Settings(slack_bot_token="xoxb-1", slack_signing_secret="s",
                        slack_app_token="", slack_api_url="https://slack.com/api/",
                        approval_channel="C0APPROVE", requesters=("U0ALICE01",),
                        approvers=("U0BOB0001",),
                        database_url=f"postgresql://bot:{ENCODED}@db/ar")
    assert settings.database.shown == "postgresql://bot:***@db/ar"
    hidden(repr(settings))


def test_a_symlink_or_a_hard_link_to_a_database_in_use_is_refused(tmp_path: Path) -> None:
    """The same file under another name is the same database: one process only."""
    real = tmp_path / "real.db"
    first = DatabaseLock(real)
    first.acquire()
    (tmp_path / "link.db").symlink_to(real)
    os.link(real, tmp_path / "hard.db")
    try:
        with pytest.raises(DatabaseInUse, match=r"pid \d+"):
            DatabaseLock(tmp_path / "link.db").acquire()
        with pytest.raises(DatabaseInUse, match="hard link"):
            DatabaseLock(tmp_path / "hard.db").acquire()
    finally:
        first.release()
    after = DatabaseLock(tmp_path / "hard.db")  # free again once the holder is gone
    after.acquire()
    after.release()


def test_a_password_in_the_query_is_hidden_like_the_one_in_the_url() -> None:
    database = Database.parse("postgresql://bot@db:5432/autorepay?sslmode=require"
                              f"&password={quote(PASSWORD, safe='')}")
    assert database.secrets == [PASSWORD]
    for shown in (str(database), repr(database), database.shown,
                  database.redact(f"driver said {PASSWORD}")):
        hidden(shown)
    assert "password=***" in str(database) and "sslmode=***" in str(database)  # (all values)


def test_a_password_inside_a_conninfo_parameter_is_hidden_too() -> None:
    conninfo = quote(f"password='{PASSWORD}' connect_timeout=3", safe="")
    database = Database.parse(f"postgresql://bot@db:5432/autorepay?conninfo={conninfo}")
    assert PASSWORD in database.secrets
    hidden(str(database), repr(database), database.redact(f"driver said {PASSWORD}"))


@pytest.mark.parametrize("raw", [
    "sqlite:///file:real.db?uri=true",  # SQLite would open another file than the locked one
    "sqlite:///real.db?mode=ro",
    "postgresql://bot:ab%00Tail9x@db:1/autorepay",  # libpq stops reading at the NUL
    "postgresql://bot:ab%0ATail9x@db:5432/autorepay",
])
def test_urls_that_would_mean_something_else_than_they_say_are_refused(raw: str) -> None:
    with pytest.raises(BadDatabaseUrl) as refused:
        Database.parse(raw)
    assert str(refused.value).startswith("AUTOREPAY_DATABASE_URL")
    assert "Tail9x" not in str(refused.value) and "real.db" not in str(refused.value)
