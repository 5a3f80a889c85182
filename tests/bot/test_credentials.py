"""OKX keys: keyring first, then the environment; never shown."""

from __future__ import annotations

import keyring
import pytest
from keyring.backends.fail import Keyring as NoKeyring

from bot import credentials
from bot.credentials import Account, CredentialsError, KeyringUnavailable
from okx import Credentials
from tests.fakes.memory_keyring import MemoryKeyring

ENV = {"OKX_API_KEY": "k-live", "OKX_API_SECRET": "s-live", "OKX_API_PASSPHRASE": "p-live"}


def test_keyring_first_then_environment(memory_keyring: MemoryKeyring) -> None:
    assert credentials.load(Account.LIVE, ENV) == Credentials("k-live", "s-live", "p-live")
    credentials.save(Account.LIVE, Credentials("k-ring", "s-ring", "p-ring"))
    assert credentials.load(Account.LIVE, ENV).api_key == "k-ring"
    assert credentials.delete(Account.LIVE) is True
    assert credentials.delete(Account.LIVE) is False
    assert credentials.load(Account.LIVE, ENV).api_key == "k-live"


def test_no_keyring_backend_falls_back_quietly() -> None:
    keyring.set_keyring(NoKeyring())
    assert credentials.load(Account.LIVE, ENV).api_key == "k-live"
    with pytest.raises(KeyringUnavailable, match="OKX_API_KEY"):
        credentials.save(Account.LIVE, Credentials("k", "s", "p"))


def test_missing_names_what_to_set() -> None:
    with pytest.raises(CredentialsError) as caught:
        credentials.load(Account.DEMO, ENV)
    message = str(caught.value)
    assert "credentials set --account demo" in message and "OKX_DEMO_API_SECRET" in message
    assert "OKX_API_KEY" not in message  # the unnamed variables are the live account's
    with pytest.raises(CredentialsError) as caught:
        credentials.load(Account.LIVE, {})
    message = str(caught.value)
    assert "credentials set --account live" in message
    assert "OKX_LIVE_API_KEY, OKX_LIVE_API_SECRET, OKX_LIVE_API_PASSPHRASE" in message
    assert "or OKX_API_KEY, OKX_API_SECRET, OKX_API_PASSPHRASE" in message


def test_incomplete_environment_names_the_missing_variable() -> None:
    with pytest.raises(CredentialsError, match="OKX_API_PASSPHRASE not set"):
        credentials.load(Account.LIVE, {"OKX_API_KEY": "k", "OKX_API_SECRET": "s"})


def test_damaged_keyring_entry_is_not_echoed(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.set_password("autorepay-bot", "live", "SECRET-BLOB-not-json")
    with pytest.raises(CredentialsError) as caught:
        credentials.load(Account.LIVE, ENV)
    assert "SECRET-BLOB" not in str(caught.value)


def test_without_a_keyring_missing_names_only_the_variables() -> None:
    keyring.set_keyring(NoKeyring())
    with pytest.raises(CredentialsError) as caught:
        credentials.load(Account.DEMO, ENV)
    message = str(caught.value)
    assert "OKX_DEMO_API_KEY" in message and "OKX_DEMO_API_PASSPHRASE" in message
    assert "credentials set" not in message
