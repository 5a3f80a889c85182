"""SPEC §1: the command grammar."""

from __future__ import annotations

import pytest

from bot.credentials import Account
from handlers.parsing import Action, Command, UsageError, parse


@pytest.mark.parametrize(("text", "expected"), [
    ("", Command(Action.HELP)), ("  ", Command(Action.HELP)), ("HELP", Command(Action.HELP)),
    ("on", Command(Action.ON)), (" On ", Command(Action.ON)), ("off", Command(Action.OFF)),
    ("status", Command(Action.STATUS)),
    ("demo", Command(Action.STATUS, Account.DEMO)),
    ("demo  on", Command(Action.ON, Account.DEMO)),
    ("DEMO\tOFF", Command(Action.OFF, Account.DEMO)),
    ("demo status", Command(Action.STATUS, Account.DEMO)),
])
def test_accepted(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "named"), [
    ("on please", "please"), ("enable", "enable"), ("demo demo", "demo"),
    ("demo on now", "now"), ("help me", "me"), ("status live", "live"),
    ("<@U123>", "&lt;@U123&gt;"), ("x" * 50, "x" * 30 + "…"),
])
def test_rejected_naming_what_was_not_understood(text: str, named: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert f"“{named}”" in str(caught.value)


def test_very_long_text_is_rejected_without_echo() -> None:
    with pytest.raises(UsageError, match="too long"):
        parse("on " * 100)
