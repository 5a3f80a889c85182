from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.okx_server import FakeOkx

OUR_PREFIXES = ("OKX_", "SLACK_", "AUTOREPAY_", "PORT", "PYTHON_KEYRING_BACKEND")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without this project's variables, whatever the shell has."""
    for name in list(os.environ):
        if name.startswith(OUR_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture
def okx_server() -> Iterator[FakeOkx]:
    server = FakeOkx()
    server.start()
    yield server
    server.stop()
