"""A throwaway PostgreSQL server for the tests: a private cluster from Debian's package.

    server = PostgresServer()
    server.start()                  # initdb + pg_ctl start on a free loopback port
    url = server.new_database()     # postgresql://autorepay:<pw>@127.0.0.1:<port>/<db>
    ...
    server.stop()                   # immediate stop, the whole directory removed

Everything lives in one temporary directory (data, socket, log). The cluster trades
durability for speed (fsync, synchronous_commit and full_page_writes off), which is fine
for data nobody keeps. Clients log in with scram-sha-256 passwords, never "trust": the
role `autorepay` has a password with characters that must be percent-encoded in a URL.

As root (here and in CI) initdb refuses to run, so everything touching the data
directory runs as the `postgres` user through `runuser`. A small watchdog process removes
the cluster if the test process dies without stopping it (even by SIGKILL); `atexit`
covers a normal exit that skipped the teardown.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    import psycopg

HOST = "127.0.0.1"
USER = "autorepay"
ADMIN = "postgres"
START_SECONDS = 30
INSTALL_HINT = "install the server with: apt-get install postgresql"
# Characters a URL cannot hold as they are: the code under test must percent-encode.
AWKWARD = "@/%:#?+"

# Runs beside the test process with the read end of a pipe as stdin. The test process
# holds the write end; when it goes (stop(), a crash, SIGKILL), stdin reaches EOF and
# whatever is left of the cluster is stopped and removed.
_WATCHDOG = """
import os, shutil, subprocess, sys
base, data, pg_ctl, *prefix = sys.argv[1:]
sys.stdin.buffer.read()
if os.path.exists(os.path.join(data, "postmaster.pid")):
    subprocess.run([*prefix, pg_ctl, "stop", "-D", data, "-m", "immediate", "-w"],
                   cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
shutil.rmtree(base, ignore_errors=True)
"""


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/<N>/bin with pg_ctl, else `pg_config --bindir`."""
    needed = ("initdb", "pg_ctl", "postgres")
    found: list[tuple[tuple[int, ...], Path]] = []
    for pg_ctl in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"):
        version = pg_ctl.parent.parent.name
        key = tuple(int(p) for p in version.split(".") if p.isdigit())
        if all((pg_ctl.parent / name).exists() for name in needed):
            found.append((key, pg_ctl.parent))
    if found:
        return max(found)[1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                check=False)
        bindir = Path(result.stdout.strip())
        if result.returncode == 0 and all((bindir / name).exists() for name in needed):
            return bindir
    raise PostgresUnavailable(
        "No PostgreSQL server found (no pg_ctl under /usr/lib/postgresql/*/bin, nor in "
        f"`pg_config --bindir`); {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - only without the dev dependency
        raise PostgresUnavailable(
            "psycopg is missing: .venv/bin/pip install 'psycopg[binary]>=3.2'") from e
    return psycopg


class PostgresServer:
    """One private PostgreSQL cluster on 127.0.0.1:<port>, for the tests."""

    def __init__(self, bindir: Path | None = None) -> None:
        self._bindir = bindir
        self._base: Path | None = None
        self._port: int | None = None
        self._running = False
        self._admin_password = secrets.token_urlsafe(24)
        self._password = (secrets.token_urlsafe(9) + AWKWARD + secrets.token_urlsafe(9))
        self._names = itertools.count(1)
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_pipe: int | None = None

    # ---- public API -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return self._port

    @property
    def password(self) -> str:
        """The `autorepay` role's password, as it is (not URL-encoded)."""
        return self._password

    @property
    def user(self) -> str:
        return USER

    @property
    def host(self) -> str:
        return HOST

    @property
    def admin_url(self) -> str:
        """The superuser `postgres` on the `postgres` database."""
        return (f"postgresql://{ADMIN}:{quote(self._admin_password, safe='')}"
                f"@{HOST}:{self.port}/postgres")

    @property
    def running(self) -> bool:
        return self._running

    @property
    def log_path(self) -> Path:
        return self._dir / "postgres.log"

    def url(self, db: str) -> str:
        """The URL of database `db` for the `autorepay` role (password percent-encoded)."""
        return (f"postgresql://{USER}:{quote(self._password, safe='')}"
                f"@{HOST}:{self.port}/{quote(db, safe='')}")

    def start(self) -> None:
        """initdb a fresh cluster in a new temporary directory and start it."""
        if self._base is not None:
            raise RuntimeError("this PostgresServer was started already")
        if self._bindir is None:
            self._bindir = find_bindir()
        _psycopg()
        self._base = self._make_dir()
        atexit.register(self.stop)
        try:
            self._start_watchdog()
            self._initdb()
            for attempt in range(3):
                self._port = free_port()
                error = self._pg_ctl_start()
                if error is None:
                    break
                # Someone took the port between free_port() and the bind: try another.
                if attempt == 2 or "already in use" not in error:
                    raise RuntimeError(f"PostgreSQL did not start:\n{error}")
            self._admin_sql(
                "CREATE ROLE {} LOGIN CREATEDB PASSWORD {}", Ident(USER), self._password)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop at once (-m immediate) and delete the cluster. Safe to call twice."""
        base = self._base
        if base is None:
            return
        with contextlib.suppress(Exception):
            if (self._data / "postmaster.pid").exists():
                self._run([self._tool("pg_ctl"), "stop", "-D", str(self._data),
                           "-m", "immediate", "-w"], timeout=START_SECONDS)
        self._running = False
        shutil.rmtree(base, ignore_errors=True)
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None
        self._base = None
        atexit.unregister(self.stop)

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server but keep the cluster: the database is "lost" until
        start_server(). `fast` checkpoints, so nothing committed is lost; `immediate`
        is a crash (with synchronous_commit off, the last commits may then be gone)."""
        self._run([self._tool("pg_ctl"), "stop", "-D", str(self._data), "-m", mode, "-w"],
                  timeout=START_SECONDS)
        self._running = False

    def start_server(self) -> None:
        """Start the cluster again on the same port (after stop_server())."""
        error = self._pg_ctl_start()
        if error is not None:
            raise RuntimeError(f"PostgreSQL did not start again on port {self.port}:\n{error}")

    def new_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A fresh database owned by `autorepay` (empty, or a copy of database `template`,
        which nobody may be connected to); returns its URL."""
        if name is None:
            name = f"test_{next(self._names)}_{secrets.token_hex(3)}"
        if template is None:
            self._admin_sql("CREATE DATABASE {} OWNER {}", Ident(name), Ident(USER))
        else:
            self._admin_sql("CREATE DATABASE {} OWNER {} TEMPLATE {}", Ident(name),
                            Ident(USER), Ident(template))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (by name, or by the URL new_database() gave), even if in use."""
        if "://" in name:
            name = unquote(urlsplit(name).path.lstrip("/"))
        self._admin_sql("DROP DATABASE IF EXISTS {} WITH (FORCE)", Ident(name))

    def kill_connections(self, db: str) -> int:
        """pg_terminate_backend() every connection to database `db` (name or URL); returns
        how many were terminated."""
        if "://" in db:
            db = unquote(urlsplit(db).path.lstrip("/"))
        with self._admin() as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()", (db,)).fetchone()
        return int(row[0]) if row else 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- the machinery --------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self._base is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return self._base

    @property
    def _data(self) -> Path:
        return self._dir / "data"

    @property
    def _sockets(self) -> Path:
        return self._dir / "sock"

    def _tool(self, name: str) -> str:
        assert self._bindir is not None
        return str(self._bindir / name)

    @staticmethod
    def _as_postgres() -> list[str]:
        """The prefix that runs a command as the `postgres` user when we are root."""
        return ["runuser", "-u", ADMIN, "--"] if os.geteuid() == 0 else []

    def _make_dir(self) -> Path:
        if os.geteuid() != 0:
            base = Path(tempfile.mkdtemp(prefix="autorepay-pg-"))
            (base / "sock").mkdir()
            return base
        try:
            account = pwd.getpwnam(ADMIN)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, but there is no `{ADMIN}` user to run the server as; "
                f"{INSTALL_HINT}") from None
        parent = Path(tempfile.gettempdir())
        if not all(os.stat(p).st_mode & 0o001 for p in (parent, *parent.parents)):
            parent = Path("/tmp")  # the postgres user could not reach the usual one
        base = Path(tempfile.mkdtemp(prefix="autorepay-pg-", dir=parent))
        (base / "sock").mkdir(mode=0o700)
        for path in (base, base / "sock"):
            os.chown(path, account.pw_uid, account.pw_gid)
        return base

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        result = subprocess.run([*self._as_postgres(), *args], cwd=self._dir, env=env,
                                capture_output=True, text=True, timeout=timeout,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")
        return result

    def _start_watchdog(self) -> None:
        read_end, write_end = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(self._dir), str(self._data),
                 self._tool("pg_ctl"), *self._as_postgres()],
                stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # a Ctrl-C to pytest does not reach it
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._watchdog_pipe = write_end

    def _initdb(self) -> None:
        pwfile = self._dir / "pwfile"
        pwfile.write_text(self._admin_password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            account = pwd.getpwnam(ADMIN)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        try:
            self._run([self._tool("initdb"), "-D", str(self._data), "-U", ADMIN,
                       f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                       "--locale=C", "--no-sync", "--no-instructions"], timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)

    def _pg_ctl_start(self) -> str | None:
        """Start the server on self.port; None, or why it did not start."""
        options = (f"-p {self.port} -k {shlex.quote(str(self._sockets))}"
                   f" -c listen_addresses={HOST} -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=200")
        log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:
            self._run([self._tool("pg_ctl"), "start", "-w", "-t", str(START_SECONDS),
                       "-D", str(self._data), "-l", str(self.log_path), "-o", options],
                      timeout=START_SECONDS + 15)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            # A server that is still coming up must not outlive the attempt.
            with contextlib.suppress(Exception):
                self._run([self._tool("pg_ctl"), "stop", "-D", str(self._data),
                           "-m", "immediate", "-w"], timeout=START_SECONDS)
            try:
                with self.log_path.open("rb") as log:
                    log.seek(log_size)
                    new = log.read().decode(errors="replace")
            except OSError:
                new = ""
            return f"{e}\n--- {self.log_path} ---\n{new}"
        self._running = True
        return None

    def _admin(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = _psycopg().connect(
            self.admin_url, autocommit=True, connect_timeout=10)
        return conn

    def _admin_sql(self, statement: str, *parts: object) -> None:
        """Run a utility statement (which takes no bind parameters): Ident parts are
        quoted as identifiers, anything else as literals."""
        from psycopg import sql

        pieces = [sql.Identifier(p.name) if isinstance(p, Ident) else sql.Literal(p)
                  for p in parts]
        with self._admin() as conn:
            conn.execute(sql.SQL(statement).format(*pieces))


class Ident:
    """A name to quote as an SQL identifier in PostgresServer._admin_sql()."""

    def __init__(self, name: str) -> None:
        self.name = name
