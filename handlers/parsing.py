"""The text after /autorepay → a typed Command, or a UsageError naming what was wrong.

Grammar (SPEC §1)::

    on | off [ACCOUNT] [-- REASON]     request a change
    ACCOUNT on | off [-- REASON]       the same (`demo on` keeps working)
    status [ACCOUNT] | ACCOUNT status | ACCOUNT
                                       current state; `status` alone: every account
    pending                            requests waiting for approval
    history [ACCOUNT] [N]              last N finished requests (1..50, default 10)
    cancel REQUEST_ID                  withdraw a pending request (`ar-1f3a9c2e`)
    help | (empty)                     usage

- `on`/`off` without ACCOUNT means the one live (non-demo) account, if exactly one is
  configured; otherwise the user has to say which.
- REASON is everything after the first `--` (or an em or en dash: Slack clients turn
  `--` into one), trimmed, white space collapsed, at most MAX_REASON characters; empty
  means none. Only on/off take one; `require_reason` makes it mandatory there.
- Words are split on any white space and compared case-insensitively (ASCII letters
  only: `off` written with the ligature U+FB00 is not `off`). Nothing else is accepted:
  `on please` is an error, not `on`. A configured account name always means that
  account, so `history 7` with an account named `7` is that account's history.
- Error messages are short, plain, and show user words only through quote().
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from bot.accounts import COMMAND_WORDS, DEFAULT, Account, find

MAX_TEXT = 200  # the command part, before any reason
MAX_REASON = 500
HISTORY_DEFAULT = 10
HISTORY_MAX = 50
WORD_LIMIT = 20  # characters of a user's word shown in an error (quote() escapes them)

SEPARATOR = re.compile("--|\u2014|\u2013")  # --, em dash, en dash
INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs"})  # control, format, private use, surrogate
REQUEST_ID = re.compile(r"ar-[0-9a-z]{1,32}")
DIGITS = re.compile(r"[0-9]+")
NUMBER_LIKE = re.compile(r"[+-]?[0-9]+")


class Action(StrEnum):
    ON = "on"
    OFF = "off"
    STATUS = "status"
    PENDING = "pending"
    HISTORY = "history"
    CANCEL = "cancel"
    HELP = "help"


@dataclass(frozen=True)
class Command:
    action: Action
    account: Account | None = None  # ON/OFF: always set; STATUS/HISTORY: None = all
    reason: str = ""
    count: int = HISTORY_DEFAULT  # HISTORY's N
    request_id: str = ""  # CANCEL, lowercased

    @property
    def desired(self) -> bool:
        return self.action is Action.ON


class UsageError(Exception):
    """The text was not a command; the message says which part was not understood."""


CHANGES = (Action.ON, Action.OFF)


def parse(text: str, accounts: Sequence[Account] = DEFAULT, *,
          require_reason: bool = False) -> Command:
    command_text, reason = split_reason(text)
    if len(command_text) > MAX_TEXT:
        raise UsageError("That is too long to be an /autorepay command.")
    command = _command(command_text.split(), tuple(accounts))
    return _with_reason(command, reason, require_reason)


def split_reason(text: str) -> tuple[str, str | None]:
    """(command part, reason); the reason is None without a separator, else trimmed,
    with white space collapsed and control and format characters (NUL, ESC, the
    right-to-left override, zero-width spaces…) taken out, so what approvers read is
    what it looks like ("" when nothing is left)."""
    found = SEPARATOR.search(text)
    if found is None:
        return text, None
    visible = "".join(ch for ch in text[found.end():]
                      if ch.isspace() or unicodedata.category(ch) not in INVISIBLE)
    return text[:found.start()], " ".join(visible.split())


def _with_reason(command: Command, reason: str | None, require_reason: bool) -> Command:
    if command.action not in CHANGES:
        if reason is not None:
            raise UsageError("Only on and off take a reason after `--`.")
        return command
    if reason and len(reason) > MAX_REASON:
        raise UsageError(f"The reason is too long: at most {MAX_REASON} characters.")
    if require_reason and not reason:
        example = f"/autorepay {command.action} {command.account} -- why"
        raise UsageError(f"A reason is required. Add it after `--`, e.g. `{example}`.")
    return replace(command, reason=reason or "")


def _command(words: list[str], accounts: tuple[Account, ...]) -> Command:
    """words: the command part, split. Errors name the first word that breaks it."""
    match [fold(word) for word in words]:
        case [] | ["help"]:
            return Command(Action.HELP)
        case ["pending"]:
            return Command(Action.PENDING)
        case ["help" | "pending", *_]:
            raise not_understood(words[1])
        case ["on" | "off" as verb]:
            return Command(Action(verb), _only_live(verb, accounts))
        case ["on" | "off" as verb, _, *_]:
            account = _named_account(words[1], accounts)
            _nothing_more(words, 2)
            return Command(Action(verb), account)
        case ["status", *rest]:
            named = _named_account(words[1], accounts) if rest else None
            _nothing_more(words, 2)
            return Command(Action.STATUS, named)
        case ["history", *_]:
            return _history(words[1:], accounts)
        case ["cancel"]:
            raise UsageError("Say which request to cancel, e.g. `/autorepay cancel "
                             "ar-1f3a9c2e` (`/autorepay pending` lists them).")
        case ["cancel", request_id, *_]:
            if not REQUEST_ID.fullmatch(request_id):
                raise UsageError(f"{shown(words[1])} is not a request ID; "
                                 "they look like ar-1f3a9c2e.")
            _nothing_more(words, 2)
            return Command(Action.CANCEL, request_id=request_id)
        case [first, *_]:
            return _account_first(words, find(accounts, first), accounts)
    raise AssertionError("unreachable")  # pragma: no cover


def _account_first(words: list[str], account: Account | None,
                   accounts: tuple[Account, ...]) -> Command:
    """`ACCOUNT`, `ACCOUNT on|off|status`."""
    if account is None:
        raise UsageError(f"I didn't understand {shown(words[0])}: not a command or an "
                         f"account ({account_list(accounts)}).")
    match [fold(word) for word in words[1:]]:
        case [] | ["status"]:
            return Command(Action.STATUS, account)
        case ["on" | "off" as verb]:
            return Command(Action(verb), account)
        case ["on" | "off" | "status", *_]:
            raise not_understood(words[2])
    raise not_understood(words[1])


def _history(words: list[str], accounts: tuple[Account, ...]) -> Command:
    """`history [ACCOUNT] [N]`; words are the ones after `history`."""
    if not words:
        return Command(Action.HISTORY)
    account = find(accounts, fold(words[0]))
    if account is None:
        if not NUMBER_LIKE.fullmatch(words[0]):
            raise UsageError(f"I didn't understand {shown(words[0])}: not an account "
                             f"({account_list(accounts)}) or a number.")
        count = _count(words[0])
        _nothing_more(words, 1)
        return Command(Action.HISTORY, count=count)
    count = _count(words[1]) if len(words) > 1 else HISTORY_DEFAULT
    _nothing_more(words, 2)
    return Command(Action.HISTORY, account, count=count)


def _count(word: str) -> int:
    if DIGITS.fullmatch(word) and 1 <= int(word) <= HISTORY_MAX:
        return int(word)
    raise UsageError(f"History shows 1 to {HISTORY_MAX} requests, not {shown(word)}.")


def _only_live(verb: str, accounts: tuple[Account, ...]) -> Account:
    """The account `on`/`off` means when none is named: the one live account."""
    live = [account for account in accounts if not account.demo]
    if len(live) == 1:
        return live[0]
    raise UsageError(f"Which account? Say `/autorepay {verb} ACCOUNT` with one of: "
                     f"{account_list(accounts)}.")


def _named_account(word: str, accounts: tuple[Account, ...]) -> Account:
    """The account `word` names where only an account may stand."""
    key = fold(word)
    account = find(accounts, key)
    if account is not None:
        return account
    if key in COMMAND_WORDS:
        raise not_understood(word)
    raise UsageError(f"There is no account {shown(word)}. "
                     f"Accounts: {account_list(accounts)}.")


def _nothing_more(words: list[str], expected: int) -> None:
    """The command is complete after `expected` words: any further word is an error."""
    if len(words) > expected:
        raise not_understood(words[expected])


def not_understood(word: str) -> UsageError:
    return UsageError(f"I didn't understand {shown(word)}. See `/autorepay help`.")


def shown(word: str) -> str:
    """A user's word as an error message shows it: quoted, short, escaped."""
    return f"“{quote(word, WORD_LIMIT)}”"


def fold(word: str) -> str:
    """Case-insensitive form of a word. Only ASCII folds: every word of the grammar is
    ASCII, and Unicode folding would make `o\ufb00` (a ligature) or `\u017ftatus` (long
    s) commands."""
    return word.lower() if word.isascii() else word


def account_list(accounts: Sequence[Account]) -> str:
    """The accounts as every message lists them: `live, demo (DEMO)`."""
    names = [f"{a.name} (DEMO)" if a.demo else a.name for a in accounts]
    return ", ".join(names) if names else "none"


def quote(word: str, limit: int = 30) -> str:
    """A user's word made safe to show in Slack mrkdwn (no mentions, no links)."""
    short = word if len(word) <= limit else word[:limit] + "…"
    return short.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
