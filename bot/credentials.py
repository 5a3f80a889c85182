"""OKX credentials: the OS keyring first (service `autorepay-bot`), then the environment.

A machine without a usable keyring backend falls back to the environment quietly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from enum import StrEnum

import keyring
from keyring.errors import KeyringError, PasswordDeleteError

from okx import Credentials

SERVICE = "autorepay-bot"
log = logging.getLogger("bot.credentials")


class Account(StrEnum):
    LIVE = "live"
    DEMO = "demo"

    @property
    def is_demo(self) -> bool:
        return self is Account.DEMO

    @property
    def env_names(self) -> tuple[str, str, str]:
        prefix = "OKX_DEMO_" if self.is_demo else "OKX_"
        return (f"{prefix}API_KEY", f"{prefix}API_SECRET", f"{prefix}API_PASSPHRASE")

    @property
    def set_command(self) -> str:
        return "python -m bot credentials set" + (" --demo" if self.is_demo else "")


class CredentialsError(Exception):
    """Credentials are missing or incomplete; the message says what to set."""


class KeyringUnavailable(CredentialsError):
    pass


def load(account: Account, environ: Mapping[str, str]) -> Credentials:
    """Credentials for one account, or CredentialsError naming what to set."""
    try:
        stored = _from_keyring(account)
    except KeyringUnavailable:  # no backend on this machine (servers, CI): the environment
        return _from_environment(account, environ, keyring_usable=False)
    if stored is not None:
        return stored
    return _from_environment(account, environ, keyring_usable=True)


def ensure_keyring(account: Account) -> None:
    """Fail before anyone types a secret if there is nowhere to keep it."""
    try:
        keyring.get_password(SERVICE, account.value)
    except KeyringError:
        raise KeyringUnavailable(_no_keyring(account)) from None


def save(account: Account, credentials: Credentials) -> None:
    blob = json.dumps({"api_key": credentials.api_key, "secret": credentials.secret,
                       "passphrase": credentials.passphrase})
    try:
        keyring.set_password(SERVICE, account.value, blob)
    except KeyringError:
        raise KeyringUnavailable(_no_keyring(account)) from None


def delete(account: Account) -> bool:
    """Remove stored credentials; False when there were none."""
    try:
        keyring.delete_password(SERVICE, account.value)
    except PasswordDeleteError:
        return False
    except KeyringError:
        raise KeyringUnavailable(_no_keyring(account)) from None
    return True


def _from_keyring(account: Account) -> Credentials | None:
    try:
        blob = keyring.get_password(SERVICE, account.value)
    except KeyringError:
        raise KeyringUnavailable(_no_keyring(account)) from None
    if not blob:
        return None
    try:
        fields = json.loads(blob)
        return Credentials(fields["api_key"], fields["secret"], fields["passphrase"])
    except (ValueError, KeyError, TypeError):
        # Never echo the blob: it holds the secret.
        raise CredentialsError(f"The keyring entry for OKX {account} is damaged: run "
                               f"`{account.set_command}` again") from None


def _from_environment(account: Account, environ: Mapping[str, str], *,
                      keyring_usable: bool) -> Credentials:
    names = account.env_names
    values = [environ.get(name, "").strip() for name in names]
    if all(values):
        return Credentials(*values)
    if any(values):
        missing = ", ".join(n for n, v in zip(names, values, strict=True) if not v)
        raise CredentialsError(f"OKX {account} credentials are incomplete: {missing} not set")
    if not keyring_usable:  # `credentials set` cannot work here: name the variables only
        raise CredentialsError(f"No OKX {account} credentials and no usable keyring on this "
                               f"machine: set {', '.join(names)} in the environment")
    raise CredentialsError(
        f"No OKX {account} credentials: run `{account.set_command}` "
        f"or set {', '.join(names)}")


def _no_keyring(account: Account) -> str:
    names = ", ".join(account.env_names)
    return f"No usable keyring on this machine: set {names} in the environment instead"
