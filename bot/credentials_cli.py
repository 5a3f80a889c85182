"""`python -m bot credentials set|delete|check [--account NAME | --demo]`: an account's OKX
key in the OS keyring (one entry per account name).

NAME is one of the accounts AUTOREPAY_ACCOUNTS configures (any case; default `live`);
`--demo` is short for `--account demo`. `check` talks to OKX as the account is
configured: a `:demo` account through OKX's demo trading.

Every way a person can end a command early or get something wrong (Ctrl-C, Ctrl-D, no
keyring, no credentials, OKX away) ends in one line on stderr and a non-zero exit:

    2    credentials or configuration missing, incomplete or unusable
    1    OKX refused the key or could not be reached; end of input at a prompt
    130  Ctrl-C (128 + SIGINT, as shells report it)
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from bot import accounts, credentials
from bot.accounts import Account
from bot.config import ConfigError, okx_base_url, report
from bot.credentials import CredentialsError
from okx import AccountConfig, Credentials, OkxClient, OkxError, RetryPolicy

DEFAULT_ACCOUNT = "live"  # without --account (or --demo)
CONFIG_EXIT = 2
FAILED_EXIT = 1
INTERRUPTED_EXIT = 130
# A person is waiting at the terminal: give up on an unreachable OKX within a second or so.
CHECK_RETRY = RetryPolicy(max_attempts=3, deadline=5.0)


class Cancelled(Exception):
    """The person left a prompt (Ctrl-C, Ctrl-D) before anything was stored."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("cancelled; nothing was stored")
        self.exit_code = exit_code


class UnknownAccount(Exception):
    """--account names no configured account (or contradicts --demo); one line."""


def credentials_command(action: str, name: str | None, demo: bool,
                        environ: Mapping[str, str]) -> int:
    """The command as typed: the account chosen by name among those configured."""
    configured, problems = accounts.configured(environ)
    if problems:
        return report(problems)
    try:
        account = choose_account(configured, name, demo)
    except UnknownAccount as exc:
        return _stop(str(exc), CONFIG_EXIT)
    return manage_credentials(action, account, environ)


def choose_account(configured: tuple[Account, ...], name: str | None, demo: bool) -> Account:
    """The configured account `--account NAME` / `--demo` (its alias) chooses."""
    if demo and name is not None and name.strip().lower() != Account.DEMO.name:
        raise UnknownAccount(f"--demo is short for --account demo: use --account {name} "
                             "without --demo")
    wanted = Account.DEMO.name if demo else (name or DEFAULT_ACCOUNT).strip().lower()
    account = accounts.find(configured, wanted)
    if account is not None:
        return account
    default = " (the default without --account)" if name is None and not demo else ""
    names = ", ".join(a.name for a in configured)
    raise UnknownAccount(f"there is no account {wanted.lower()!r}{default}: the accounts are "
                         f"{names} (AUTOREPAY_ACCOUNTS sets them)")


def manage_credentials(action: str, account: Account, environ: Mapping[str, str]) -> int:
    try:
        return _run(action, account, environ)
    except Cancelled as exc:
        return _stop(str(exc), exc.exit_code, after_prompt=True)
    except KeyboardInterrupt:
        return _stop("cancelled", INTERRUPTED_EXIT, after_prompt=True)
    except (CredentialsError, ConfigError) as exc:
        return _stop(str(exc), CONFIG_EXIT)


def _run(action: str, account: Account, environ: Mapping[str, str]) -> int:
    if action == "set":
        credentials.ensure_keyring(account)
        credentials.save(account, prompt_credentials(account))
        print(f"Stored the OKX {account} credentials in the keyring "
              f"(service {credentials.SERVICE}).")
    elif action == "delete":
        found = credentials.delete(account)
        print(f"Deleted the OKX {account} credentials." if found
              else f"There were no OKX {account} credentials in the keyring.")
    else:
        return asyncio.run(check_credentials(account, environ))
    return 0


def _stop(message: str, exit_code: int, *, after_prompt: bool = False) -> int:
    # On a terminal the cursor may still sit after a prompt (or a ^C): start a new line.
    newline = "\n" if after_prompt and _on_terminal() else ""
    print(f"{newline}autorepay: {message}", file=sys.stderr)
    return exit_code


def prompt_credentials(account: Account) -> Credentials:
    """Three answers from the person; Cancelled on Ctrl-C or at the end of the input."""
    kind = " for demo trading" if account.demo else ""
    print(f"OKX {account} API key{kind} (from okx.com → API; the input of the last two is "
          "hidden)")
    try:
        values = (ask("API key: "), ask("Secret key: ", hidden=True),
                  ask("Passphrase: ", hidden=True))
    except KeyboardInterrupt:
        raise Cancelled(INTERRUPTED_EXIT) from None
    except EOFError:
        raise Cancelled(FAILED_EXIT) from None
    if not all(values):
        raise CredentialsError("API key, secret key and passphrase are all needed; "
                               "nothing was stored")
    return Credentials(*values)


def ask(prompt: str, *, hidden: bool = False) -> str:
    """One answer, stripped; EOFError at the end of the input.

    On a terminal a hidden answer is not echoed (getpass). Without one (piped input)
    there is no echo to turn off and getpass would only warn, so the line is read as is.
    """
    if hidden and _on_terminal():
        return getpass.getpass(prompt).strip()
    return input(prompt).strip()  # flushes stdout first, so the prompt is seen


def _on_terminal() -> bool:
    return sys.stdin.isatty()


async def check_credentials(account: Account, environ: Mapping[str, str]) -> int:
    creds = credentials.load(account, environ)
    base_url = okx_base_url(environ)
    async with OkxClient(creds, demo=account.is_demo, base_url=base_url,
                         retry=CHECK_RETRY) as client:
        try:
            with _quiet("okx"):
                config = await client.get_account_config()
        except OkxError as exc:
            print(f"autorepay: OKX {account} check failed: {_reason(exc, base_url)}",
                  file=sys.stderr)
            return FAILED_EXIT
    _show(account, config)
    return 0


def _reason(exc: OkxError, base_url: str) -> str:
    if exc.code == "network":  # the client's own code; msg names what failed underneath
        return f"could not reach {base_url} ({exc.msg})"
    return " ".join(part for part in (str(exc), exc.operator_hint) if part)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """The client's retry notes are for the bot's log; a person here gets one line."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _show(account: Account, config: AccountConfig) -> None:
    print(f"OKX {account} account{' (demo trading)' if account.demo else ''}: "
          f"uid {config.uid}" + (f" ({config.label})" if config.label else ""))
    print(f"  account mode: {config.mode_name}, borrowing "
          f"{'enabled' if config.enable_spot_borrow else 'disabled'}")
    print(f"  permissions:  {', '.join(config.perm) or 'none reported'}")
    print(f"  auto repay:   {'ON' if config.auto_repay else 'OFF'}"
          + ("" if config.supports_auto_repay else " (does not apply in this mode)"))
