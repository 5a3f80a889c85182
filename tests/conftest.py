from __future__ import annotations

import os
from collections.abc import Iterator

import keyring
import pytest

from tests.fakes.memory_keyring import MemoryKeyring
from tests.fakes.okx_server import FakeOkx

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
