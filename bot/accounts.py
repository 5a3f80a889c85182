"""Named OKX accounts: `AUTOREPAY_ACCOUNTS=main, desk-a, paper:demo`.

Each account is used with its own API key (OKX has no master-side endpoint for this
setting). A name is `[a-z0-9][a-z0-9-]{0,30}`, without `--` (it starts a reason), and
not a command word; `:demo` marks a
demo-trading account. Unset means `live, demo:demo`, the two accounts the bot always had.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
COMMAND_WORDS = frozenset({"on", "off", "status", "pending", "history", "cancel", "help"})
DEFAULT_ACCOUNTS = "live, demo:demo"
# Names whose AUTOREPAY_<NAME>_APPROVERS would be a setting of its own.
CLASHES = {"mention": "AUTOREPAY_MENTION_APPROVERS"}


@dataclass(frozen=True, order=True)
class Account:
    name: str
    demo: bool = False

    LIVE: ClassVar[Account]
    DEMO: ClassVar[Account]

    def __str__(self) -> str:
        return self.name

    @property
    def is_demo(self) -> bool:
        return self.demo

    @property
    def environment(self) -> str:
        """LIVE or DEMO, in capitals, as every reply writes it."""
        return "DEMO" if self.demo else "LIVE"

    @property
    def variable(self) -> str:
        """The name as it appears in variable names: `desk-a` → `DESK_A`."""
        return self.name.upper().replace("-", "_")

    @property
    def env_names(self) -> tuple[str, str, str]:
        """OKX_<NAME>_API_KEY, …_API_SECRET, …_API_PASSPHRASE."""
        prefix = f"OKX_{self.variable}_"
        return (f"{prefix}API_KEY", f"{prefix}API_SECRET", f"{prefix}API_PASSPHRASE")

    @property
    def env_name_sets(self) -> tuple[tuple[str, str, str], ...]:
        """Where the environment may hold this account's key, in the order read: the
        account named `live` (a live one) also reads the unnamed OKX_API_* variables."""
        if self.name == "live" and not self.demo:
            return (self.env_names, ("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE"))
        return (self.env_names,)

    @property
    def set_command(self) -> str:
        return f"python -m bot credentials set --account {self.name}"


Account.LIVE = Account("live")
Account.DEMO = Account("demo", demo=True)
DEFAULT = (Account.LIVE, Account.DEMO)  # what DEFAULT_ACCOUNTS reads as


def read_accounts(raw: str | None) -> tuple[tuple[Account, ...], list[str]]:
    """The accounts `AUTOREPAY_ACCOUNTS` names (the default when unset or blank), and
    what is wrong with it, one line each."""
    text = raw if raw and raw.strip() else DEFAULT_ACCOUNTS
    accounts: list[Account] = []
    problems: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, kind = item.partition(":")
        name, kind = name.strip().lower(), kind.strip().lower()
        if not NAME.fullmatch(name):
            problems.append(f"AUTOREPAY_ACCOUNTS has {item!r}: a name is 1 to 31 letters, "
                            "digits or '-', starting with a letter or digit")
        elif "--" in name:  # "--" starts a reason in a command
            problems.append(f"AUTOREPAY_ACCOUNTS has {name!r}: a name can't contain '--'")
        elif name in COMMAND_WORDS:
            problems.append(f"AUTOREPAY_ACCOUNTS has {name!r}, which is a command word: "
                            "choose another name")
        elif name in CLASHES:
            problems.append(f"AUTOREPAY_ACCOUNTS has {name!r}: its approvers' variable would "
                            f"be {CLASHES[name]}, a setting of its own: choose another name")
        elif kind not in ("", "demo"):
            problems.append(f"AUTOREPAY_ACCOUNTS has {item!r}: after ':' only 'demo' is "
                            "allowed (for a demo-trading account)")
        elif any(a.name == name for a in accounts):
            problems.append(f"AUTOREPAY_ACCOUNTS names {name!r} twice")
        else:
            accounts.append(Account(name, demo=kind == "demo"))
    if not accounts and not problems:
        problems.append("AUTOREPAY_ACCOUNTS names no account")
    return tuple(accounts), problems


def configured(environ: Mapping[str, str]) -> tuple[tuple[Account, ...], list[str]]:
    return read_accounts(environ.get("AUTOREPAY_ACCOUNTS"))


def find(accounts: Sequence[Account], name: str) -> Account | None:
    """The account of that name (names are lowercase; callers fold what people type)."""
    return next((a for a in accounts if a.name == name), None)
