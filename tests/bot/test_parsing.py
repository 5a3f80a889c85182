"""SPEC §1: the command grammar, by example."""

from __future__ import annotations

import pytest

from bot.accounts import Account
from handlers.parsing import (
    HISTORY_DEFAULT,
    HISTORY_MAX,
    MAX_REASON,
    MAX_TEXT,
    Action,
    Command,
    UsageError,
    account_list,
    parse,
    quote,
)

LIVE, DEMO = Account.LIVE, Account.DEMO
MAIN, DESK_A, PAPER = Account("main"), Account("desk-a"), Account("paper", demo=True)
DESKS = (MAIN, DESK_A, PAPER)  # two live accounts and a demo one
SOLO = (DESK_A, PAPER, Account("sim", demo=True))  # one live account, listed first

ON, OFF, STATUS, HISTORY = Action.ON, Action.OFF, Action.STATUS, Action.HISTORY


def error(text: str, accounts: tuple[Account, ...] = (LIVE, DEMO), *,
          require_reason: bool = False) -> str:
    """The usage error `text` gets; checks what every such message must be."""
    with pytest.raises(UsageError) as caught:
        parse(text, accounts, require_reason=require_reason)
    message = str(caught.value)
    assert 0 < len(message) < 200
    assert "<" not in message and ">" not in message
    return message


# --- Accepted forms ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("", Command(Action.HELP)), ("  \n ", Command(Action.HELP)),
    ("help", Command(Action.HELP)), ("HELP", Command(Action.HELP)),
    ("on", Command(ON, LIVE)), (" On ", Command(ON, LIVE)), ("off", Command(OFF, LIVE)),
    ("on live", Command(ON, LIVE)), ("live on", Command(ON, LIVE)),
    ("on demo", Command(ON, DEMO)), ("demo  on", Command(ON, DEMO)),
    ("DEMO\tOFF", Command(OFF, DEMO)), ("off Demo", Command(OFF, DEMO)),
    ("status", Command(STATUS)), ("STATUS", Command(STATUS)),
    ("status demo", Command(STATUS, DEMO)), ("demo status", Command(STATUS, DEMO)),
    ("demo", Command(STATUS, DEMO)), ("live", Command(STATUS, LIVE)),
    ("status live", Command(STATUS, LIVE)),
    ("pending", Command(Action.PENDING)), ("Pending ", Command(Action.PENDING)),
    ("history", Command(HISTORY)), ("history 5", Command(HISTORY, count=5)),
    ("history demo", Command(HISTORY, DEMO)),
    ("history demo 3", Command(HISTORY, DEMO, count=3)),
    ("HISTORY LIVE 50", Command(HISTORY, LIVE, count=50)),
    ("history 1", Command(HISTORY, count=1)), ("history 007", Command(HISTORY, count=7)),
    ("cancel ar-1f3a9c2e", Command(Action.CANCEL, request_id="ar-1f3a9c2e")),
    ("CANCEL AR-1F3A9C2E", Command(Action.CANCEL, request_id="ar-1f3a9c2e")),
])
def test_default_accounts(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("on main", Command(ON, MAIN)), ("main on", Command(ON, MAIN)),
    ("off desk-a", Command(OFF, DESK_A)), ("Desk-A off", Command(OFF, DESK_A)),
    ("on paper", Command(ON, PAPER)), ("paper on", Command(ON, PAPER)),
    ("status", Command(STATUS)), ("status desk-a", Command(STATUS, DESK_A)),
    ("desk-a status", Command(STATUS, DESK_A)), ("paper", Command(STATUS, PAPER)),
    ("history", Command(HISTORY)), ("history desk-a", Command(HISTORY, DESK_A)),
    ("history main 20", Command(HISTORY, MAIN, count=20)),
    ("history 12", Command(HISTORY, count=12)),
    ("pending", Command(Action.PENDING)), ("help", Command(Action.HELP)),
])
def test_named_accounts(text: str, expected: Command) -> None:
    assert parse(text, DESKS) == expected


@pytest.mark.parametrize(("accounts", "text", "expected"), [
    (SOLO, "on", Command(ON, DESK_A)), (SOLO, "off", Command(OFF, DESK_A)),
    (SOLO, "on sim", Command(ON, SOLO[2])), (SOLO, "sim off", Command(OFF, SOLO[2])),
    (SOLO, "on -- quiet", Command(ON, DESK_A, reason="quiet")),
    ((MAIN,), "off", Command(OFF, MAIN)), ((PAPER, MAIN), "on", Command(ON, MAIN)),
])
def test_on_alone_is_the_only_live_account(accounts: tuple[Account, ...], text: str,
                                           expected: Command) -> None:
    assert parse(text, accounts) == expected


@pytest.mark.parametrize(("one", "other"), [
    ("on main", "main on"), ("off paper", "paper off"), ("status desk-a", "desk-a status"),
    ("on desk-a -- why", "desk-a on -- why"),
])
def test_both_word_orders_mean_the_same(one: str, other: str) -> None:
    assert parse(one, DESKS) == parse(other, DESKS)


def test_desired_is_true_only_for_on() -> None:
    assert parse("on demo").desired is True
    assert parse("off demo").desired is False
    assert parse("status").desired is False


@pytest.mark.parametrize("space", ["\t", "\n", "\u3000", "\u00a0", "\r\n", "  \u2003 "])
def test_any_white_space_separates_words(space: str) -> None:
    text = f"{space}desk-a{space}on{space}--{space}a{space}b{space}"
    assert parse(text, DESKS) == Command(ON, DESK_A, reason="a b")


# --- Reasons ----------------------------------------------------------------------------

@pytest.mark.parametrize("separator", ["--", "\u2014", "\u2013"])
@pytest.mark.parametrize(("text", "expected"), [
    ("on main {} Rates spiking", Command(ON, MAIN, reason="Rates spiking")),
    ("main off{}Back to normal ", Command(OFF, MAIN, reason="Back to normal")),
    ("on desk-a {}  \tKeep  CASE\n and   spaces ",
     Command(ON, DESK_A, reason="Keep CASE and spaces")),
    ("on paper {} a -- b \u2014 c", Command(ON, PAPER, reason="a -- b \u2014 c")),
    ("off main {}", Command(OFF, MAIN)), ("off main {}   ", Command(OFF, MAIN)),
    ("on main {} <@U123> & co", Command(ON, MAIN, reason="<@U123> & co")),
])
def test_reason_follows_the_first_separator(separator: str, text: str,
                                            expected: Command) -> None:
    assert parse(text.format(separator), DESKS) == expected


def test_first_separator_of_any_kind_wins() -> None:
    assert parse("on main \u2013 a -- b", DESKS).reason == "a -- b"
    assert parse("on main -- a \u2014 b", DESKS).reason == "a \u2014 b"
    assert parse("on main---x", DESKS).reason == "-x"


@pytest.mark.parametrize("text", [
    "status -- why", "status main -- why", "main -- why", "main status \u2014 x",
    "pending -- x", "history -- x", "history main 5 \u2013 x", "cancel ar-1 -- x",
    "help -- x", "-- x", "--", "status --", "\u2014",
])
def test_a_reason_only_goes_with_on_or_off(text: str) -> None:
    assert "reason" in error(text, DESKS)


def test_reason_limit() -> None:
    assert parse("on main -- " + "r" * MAX_REASON, DESKS).reason == "r" * MAX_REASON
    words = " ".join(["abcd"] * 100)  # 499 characters once spaces are collapsed
    assert parse("on main --" + words.replace(" ", " \t\n "), DESKS).reason == words
    assert str(MAX_REASON) in error("on main -- " + "r" * (MAX_REASON + 1), DESKS)
    assert str(MAX_REASON) in error("off -- " + "r" * MAX_REASON + " x")


def test_the_reason_does_not_count_toward_the_command_limit() -> None:
    assert parse("on main -- " + "r" * 400, DESKS).reason == "r" * 400


@pytest.mark.parametrize("text", ["on desk-a", "desk-a on", "on desk-a --", "on desk-a \u2014  "])
def test_a_required_reason_is_asked_for(text: str) -> None:
    message = error(text, DESKS, require_reason=True)
    assert "`/autorepay on desk-a -- why`" in message
    assert parse(text, DESKS) == Command(ON, DESK_A)  # optional by default


def test_a_required_reason() -> None:
    assert "`/autorepay off live -- why`" in error("off", require_reason=True)
    assert parse("off desk-a -- ok", DESKS, require_reason=True) == \
        Command(OFF, DESK_A, reason="ok")
    # Only on/off need one; the others still must not have one.
    assert parse("status", DESKS, require_reason=True) == Command(STATUS)
    assert parse("history 3", DESKS, require_reason=True) == Command(HISTORY, count=3)
    assert "reason" in error("status -- why", DESKS, require_reason=True)


# --- Limits -----------------------------------------------------------------------------

def test_history_limits() -> None:
    assert parse(f"history {HISTORY_MAX}").count == HISTORY_MAX
    assert parse("history main 1", DESKS).count == 1
    assert parse("history").count == HISTORY_DEFAULT == 10
    assert parse("history demo").count == HISTORY_DEFAULT
    for word in ("51", "0", "-1", "+5", "00", "99999999999999999999"):
        assert f"“{word}”" in error(f"history {word}")
        assert f"“{word}”" in error(f"history main {word}", DESKS)


def test_command_part_limit() -> None:
    padded = "on" + " " * (MAX_TEXT - 6) + "demo"  # exactly MAX_TEXT characters
    assert len(padded) == MAX_TEXT
    assert parse(padded) == Command(ON, DEMO)
    assert parse(padded + "-- why") == Command(ON, DEMO, reason="why")
    assert "too long" in error(padded + " ")
    assert "too long" in error("on " * 100)
    assert "too long" in error("x" * 500 + " -- y")


# --- Errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "named"), [
    ("on please", "please"), ("enable", "enable"), ("demo demo", "demo"),
    ("demo on now", "now"), ("help me", "me"), ("pending all", "all"),
    ("status on", "on"), ("on status", "status"), ("on off", "off"),
    ("status demo now", "now"), ("on demo demo", "demo"), ("history demo 5 6", "6"),
    ("history 5 demo", "demo"), ("history x", "x"), ("history demo x", "x"),
    ("onn", "onn"), ("on-demo", "on-demo"), ("statuss", "statuss"),
    ("<@U123>", "&lt;@U123&gt;"), ("on <!channel>", "&lt;!channel&gt;"),
    ("x" * 50, "x" * 20 + "…"), ("&" * 50, "&amp;" * 20 + "…"),
    ("o\ufb00", "o\ufb00"), ("\u017ftatus", "\u017ftatus"),  # no Unicode folding
    ("on d\u0117mo", "d\u0117mo"), ("caf\u00e9", "caf\u00e9"),
])
def test_rejected_naming_what_was_not_understood(text: str, named: str) -> None:
    assert f"“{named}”" in error(text)


@pytest.mark.parametrize("text", ["on please", "please on", "status desk", "desk",
                                  "on desk", "desk status", "history desk", "history desk 3"])
def test_an_unknown_account_is_named_with_the_configured_ones(text: str) -> None:
    message = error(text, DESKS)
    assert "“desk”" in message or "“please”" in message
    assert "main, desk-a, paper (DEMO)" in message


@pytest.mark.parametrize("accounts", [DESKS, (PAPER, DEMO), ()])
def test_on_alone_needs_an_account_unless_there_is_one_live_account(
        accounts: tuple[Account, ...]) -> None:
    for verb in ("on", "off", "on -- why"):
        message = error(verb, accounts)
        assert account_list(accounts) in message
        assert "/autorepay " + verb.split()[0] in message


def test_reason_errors_come_after_command_errors() -> None:
    assert "“nope”" in error("on nope -- " + "r" * 600, DESKS)
    assert "account" in error("on -- why", DESKS)


@pytest.mark.parametrize(("text", "expected"), [
    ("cancel ar-1", "ar-1"), ("cancel ar-z", "ar-z"),
    ("cancel Ar-" + "Ab9" * 10 + "xy", "ar-" + "ab9" * 10 + "xy"),  # 32 characters
])
def test_cancel_takes_a_request_id(text: str, expected: str) -> None:
    assert parse(text) == Command(Action.CANCEL, request_id=expected)


@pytest.mark.parametrize(("text", "named"), [
    ("cancel ar-", "ar-"), ("cancel ar-XYZ!", "ar-XYZ!"), ("cancel ar_1", "ar_1"),
    ("cancel 1f3a9c2e", "1f3a9c2e"), ("cancel ar-" + "a" * 33, "ar-" + "a" * 17 + "…"),
    ("cancel ar-\u00e91", "ar-\u00e91"), ("cancel ar-1 ar-2", "ar-2"),
    ("cancel demo", "demo"), ("cancel ar-1-2", "ar-1-2"), ("ar-1f cancel", "ar-1f"),
])
def test_cancel_rejects_what_is_not_a_request_id(text: str, named: str) -> None:
    assert f"“{named}”" in error(text)


def test_cancel_without_an_id_says_how() -> None:
    assert "/autorepay cancel ar-" in error("cancel")


# --- A numeric account name -------------------------------------------------------------

def test_an_account_name_wins_over_a_count() -> None:
    seven = Account("7")
    accounts = (seven, MAIN)
    assert parse("history 7", accounts) == Command(HISTORY, seven)
    assert parse("history 7 7", accounts) == Command(HISTORY, seven, count=7)
    assert parse("history 8", accounts) == Command(HISTORY, count=8)
    assert parse("7 on", accounts) == Command(ON, seven)
    assert parse("7", accounts) == Command(STATUS, seven)


# --- Helpers others reuse ---------------------------------------------------------------

def test_account_list() -> None:
    assert account_list((LIVE, DEMO)) == "live, demo (DEMO)"
    assert account_list(DESKS) == "main, desk-a, paper (DEMO)"
    assert account_list((MAIN,)) == "main"


def test_quote() -> None:
    assert quote("<@U1> & co") == "&lt;@U1&gt; &amp; co"
    assert quote("x" * 31) == "x" * 30 + "…"
    assert quote("x" * 30) == "x" * 30
    assert quote("abcdef", limit=3) == "abc…"


def test_invisible_and_control_characters_are_taken_out_of_a_reason() -> None:
    command = parse("on live -- a\x00b\u202ec\u200bd\x1b[31m e\u00e9")
    assert command.reason == "abcd[31m e\u00e9"
    assert parse("on live -- \u200b\u202e").reason == ""
