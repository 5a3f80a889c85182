"""OKX credentials: the OS keyring first (service `autorepay-bot`, one entry per account
name), then the environment (OKX_<NAME>_API_KEY, …; `live` also reads OKX_API_*).

A machine without a usable keyring backend falls back to the environment quietly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import keyring
from keyring.errors import KeyringError, PasswordDeleteError

from bot.accounts import Account
from okx import Credentials

SERVICE = "autorepay-bot"
log = logging.getLogger("bot.credentials")


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
        keyring.get_password(SERVICE, account.name)
    except KeyringError:
        raise KeyringUnavailable(_no_keyring(account)) from None


def save(account: Account, credentials: Credentials) -> None:
    blob = json.dumps({"api_key": credentials.api_key, "secret": credentials.secret,
                       "passphrase": credentials.passphrase})
    try:
        keyring.set_password(SERVICE, account.name, blob)
    except KeyringError:
        raise KeyringUnavailable(_no_keyring(account)) from None


def delete(account: Account) -> bool:
    """Remove stored credentials; False when there were none."""
    try:
        keyring.delete_password(SERVICE, account.name)
    except PasswordDeleteError:
        return False
    except KeyringError:
        raise KeyringUnavailable(_no_keyring(account)) from None
    return True


def _from_keyring(account: Account) -> Credentials | None:
    try:
        blob = keyring.get_password(SERVICE, account.name)
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
    for names in account.env_name_sets:
        values = [environ.get(name, "").strip() for name in names]
        if all(values):
            return Credentials(*values)
        if any(values):
            missing = ", ".join(n for n, v in zip(names, values, strict=True) if not v)
            raise CredentialsError(f"OKX {account} credentials are incomplete: {missing} "
                                   "not set")
    wanted = _names(account)
    if not keyring_usable:  # `credentials set` cannot work here: name the variables only
        raise CredentialsError(f"No OKX {account} credentials and no usable keyring on this "
                               f"machine: set {wanted} in the environment")
    raise CredentialsError(f"No OKX {account} credentials: run `{account.set_command}` "
                           f"or set {wanted}")


def _names(account: Account) -> str:
    return " or ".join(", ".join(names) for names in account.env_name_sets)


def _no_keyring(account: Account) -> str:
    return (f"No usable keyring on this machine: set {_names(account)} in the environment "
            "instead")
