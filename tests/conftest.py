from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from tests.fakes.memory_keyring import MemoryKeyring
from tests.fakes.okx_server import FakeOkx
from tests.pg import PostgresServer

OUR_PREFIXES = ("OKX_", "SLACK_", "AUTOREPAY_", "PORT", "PYTHON_KEYRING_BACKEND")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without this project's variables, whatever the shell has."""
    for name in list(os.environ):
        if name.startswith(OUR_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def memory_keyring() -> MemoryKeyring:
    """Each test gets an empty keyring of its own, never the machine's."""
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def okx_server() -> Iterator[FakeOkx]:
    server = FakeOkx()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One private PostgreSQL server per pytest process (each xdist worker has its own),
    started the first time a test asks for it, removed at the end. A test that calls
    stop_server() must call start_server() before it ends."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database owned by `autorepay`, dropped after the test:
    postgresql://autorepay:<percent-encoded password>@127.0.0.1:<port>/<name>."""
    url = postgres.new_database()
    yield url
    if not postgres.running:  # a test stopped the server and did not start it again
        postgres.start_server()
    postgres.drop_database(url)


BACKENDS = ("sqlite", "postgresql")
# On a test (or as a module's `pytestmark`): run it once per backend. The test, or a
# fixture it uses, takes `database`.
ON_BOTH_BACKENDS = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test: SQLite unless parametrized (ON_BOTH_BACKENDS)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Path | str:
    """Where this test's bot keeps its state: a SQLite file, or a fresh PostgreSQL
    database's URL."""
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "autorepay.db"
