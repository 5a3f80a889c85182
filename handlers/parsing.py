"""The text after /autorepay → a typed Command, or a UsageError naming what was wrong.

Accepted (case-insensitive, any amount of white space): empty, help, on, off, status,
demo, demo on, demo off, demo status. Nothing else: `on please` is an error, not `on`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.credentials import Account

MAX_TEXT = 200


class Action(StrEnum):
    ON = "on"
    OFF = "off"
    STATUS = "status"
    HELP = "help"


@dataclass(frozen=True)
class Command:
    action: Action
    account: Account = Account.LIVE

    @property
    def desired(self) -> bool:
        return self.action is Action.ON


class UsageError(Exception):
    """The text was not a command; the message says which part was not understood."""


ACCOUNT_ACTIONS = {"on": Action.ON, "off": Action.OFF, "status": Action.STATUS}


def parse(text: str) -> Command:
    if len(text) > MAX_TEXT:
        raise UsageError("That is too long to be an /autorepay command.")
    original = text.split()
    words = [word.casefold() for word in original]
    match words:
        case [] | ["help"]:
            return Command(Action.HELP)
        case [word] if word in ACCOUNT_ACTIONS:
            return Command(ACCOUNT_ACTIONS[word])
        case ["demo"]:
            return Command(Action.STATUS, Account.DEMO)
        case ["demo", word] if word in ACCOUNT_ACTIONS:
            return Command(ACCOUNT_ACTIONS[word], Account.DEMO)
    unknown = original[_first_unknown(words)]
    raise UsageError(f"I didn't understand “{quote(unknown)}”.")


def _first_unknown(words: list[str]) -> int:
    """Index of the first word that makes the text not a command."""
    if words[0] not in (*ACCOUNT_ACTIONS, "help", "demo"):
        return 0
    if words[0] == "demo" and words[1] not in ACCOUNT_ACTIONS:
        return 1
    return 2 if words[0] == "demo" else 1


def quote(word: str, limit: int = 30) -> str:
    """A user's word made safe to show in Slack mrkdwn (no mentions, no links)."""
    short = word if len(word) <= limit else word[:limit] + "…"
    return short.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
