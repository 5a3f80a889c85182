"""Property-based tests of the command parser (hypothesis), SPEC §1.

The oracle here is written apart from the parser: it enumerates the valid commands
for a set of accounts into a table (word tuple → Command) and looks the text up,
instead of matching word patterns as handlers.parsing does.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.accounts import COMMAND_WORDS, NAME, Account
from handlers.parsing import MAX_TEXT, Action, Command, UsageError, parse, quote

SEPARATORS = ("--", "\u2014", "\u2013")
SPACES = (" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "\u2003", " \t\n ")
SPACE = st.sampled_from(SPACES)
GAP = st.lists(SPACE, min_size=1, max_size=2).map("".join)
EDGE = st.one_of(st.just(""), GAP)
CHANGES = (Action.ON, Action.OFF)

NAMES = st.from_regex(NAME, fullmatch=True).filter(
    lambda name: name not in COMMAND_WORDS and "--" not in name)
ACCOUNTS = st.lists(st.tuples(NAMES, st.booleans()), min_size=1, max_size=5,
                    unique_by=lambda pair: pair[0]).map(
    lambda pairs: tuple(Account(name, demo=demo) for name, demo in pairs))

DEFAULT = (Account.LIVE, Account.DEMO)
DESKS = (Account("main"), Account("desk-a"), Account("paper", demo=True))
TRICKY = (Account("7"), Account("ar-1", demo=True), Account("sim", demo=True))  # one live
FIXED = st.sampled_from([DEFAULT, DESKS, TRICKY])


@st.composite
def cased(draw: st.DrawFn, word: str) -> str:
    """`word` with each ASCII letter in a random case."""
    upper = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    pairs = zip(word, upper, strict=True)
    return "".join(c.upper() if up and c.isascii() else c for c, up in pairs)


def message_of(text: str, accounts: tuple[Account, ...] = DEFAULT,
               require_reason: bool = False) -> str:
    try:
        parse(text, accounts, require_reason=require_reason)
    except UsageError as exc:
        return str(exc)
    raise AssertionError(f"{text!r} was accepted")


def outcome(text: str, accounts: tuple[Account, ...] = DEFAULT,
            require_reason: bool = False) -> Command | str:
    """The Command, or the error message (lowercased)."""
    try:
        return parse(text, accounts, require_reason=require_reason)
    except UsageError as exc:
        return "error: " + str(exc).lower()


# --- (1) Every valid command parses to exactly what it means ---------------------------

@st.composite
def valid_commands(draw: st.DrawFn) -> tuple[str, tuple[Account, ...], bool, Command]:
    """(text, accounts, require_reason, the Command the text means), from the grammar."""
    accounts = draw(ACCOUNTS)
    account = draw(st.sampled_from(accounts))
    live = [a for a in accounts if not a.demo]
    form = draw(st.sampled_from(["help", "pending", "change", "status", "history", "cancel"]))
    words: list[str]
    expected: Command
    if form == "help":
        words = draw(st.sampled_from([[], ["help"]]))
        expected = Command(Action.HELP)
    elif form == "pending":
        words, expected = ["pending"], Command(Action.PENDING)
    elif form == "change":
        verb = draw(st.sampled_from(["on", "off"]))
        shapes = [[verb, account.name], [account.name, verb], *([[verb]] if len(live) == 1 else [])]
        words = draw(st.sampled_from(shapes))
        expected = Command(Action(verb), account if len(words) == 2 else live[0])
    elif form == "status":
        words = draw(st.sampled_from([["status"], ["status", account.name],
                                      [account.name, "status"], [account.name]]))
        expected = Command(Action.STATUS, None if words == ["status"] else account)
    elif form == "history":
        count = draw(st.integers(1, 50))
        number = "0" * draw(st.integers(0, 2)) + str(count)
        words = draw(st.sampled_from([["history"], ["history", account.name],
                                      ["history", number], ["history", account.name, number]]))
        named = next((a for a in accounts if a.name == number), None)  # a name wins
        match words:
            case [_]:
                expected = Command(Action.HISTORY)
            case [_, word] if word == account.name:
                expected = Command(Action.HISTORY, account)
            case [_, _] if named:
                expected = Command(Action.HISTORY, named)
            case [_, _]:
                expected = Command(Action.HISTORY, count=count)
            case _:
                expected = Command(Action.HISTORY, account, count=count)
    else:
        request_id = "ar-" + draw(st.from_regex(r"[0-9a-z]{1,32}", fullmatch=True))
        words, expected = ["cancel", request_id], Command(Action.CANCEL, request_id=request_id)

    text = draw(EDGE) + "".join([draw(cased(w)) + draw(GAP) for w in words[:-1]]
                                + [draw(cased(w)) for w in words[-1:]])
    require_reason = False
    if expected.action in CHANGES:
        require_reason = draw(st.booleans())
        if require_reason or draw(st.booleans()):
            raw = draw(st.one_of(st.text(max_size=80),
                                 st.integers(490, 500).map(lambda n: "r" * n)))
            if require_reason and not visible(raw).strip():
                raw += " Why"
            reason = " ".join(visible(raw).split())
            before = draw(GAP) if text.endswith("-") else draw(EDGE)
            text += before + draw(st.sampled_from(SEPARATORS)) + raw
            expected = replace(expected, reason=reason)
    return text + draw(EDGE), accounts, require_reason, expected


@settings(max_examples=300, deadline=None)
@given(valid_commands())
def test_every_valid_command_parses_to_what_it_means(
        case: tuple[str, tuple[Account, ...], bool, Command]) -> None:
    text, accounts, require_reason, expected = case
    assert parse(text, accounts, require_reason=require_reason) == expected


# --- (2) Nothing else is a command: an independent oracle ------------------------------

COMMANDISH = [*sorted(COMMAND_WORDS), "ON", "Off", "STATUS", "Pending", "HiStOrY", "CANCEL",
              "Help"]
NAMED = [*(a.name for a in DEFAULT + DESKS + TRICKY), "LIVE", "Demo", "DESK-A", "AR-1"]
NUMBERS = [*(str(n) for n in range(61)), "-1", "+5", "007", "050", "051", "00"]
EDGES = ["0", "1", "10", "50", "51", "-1", "00", "050", "051", "ar-1", "ar-", "7", "on", "help"]
NEAR_MISSES = [
    "onn", "of", "desk", "desk-", "stat", "histories", "please", "now", "all",
    "ar-", "ar-XYZ!", "ar-1f3a9c2e", "AR-00FF", "ar-1-2", "ar_1", "ar-" + "0" * 32,
    "ar-" + "0" * 33, "<@U1>", "<!here>", "&", "\u00e9", "caf\u00e9", "o\ufb00",
    "\u017ftatus", "\u212aey",
]
VOCABULARY = [*COMMANDISH, *NAMED, *NUMBERS, *NEAR_MISSES, *SEPARATORS]
WORD = st.one_of(*(st.sampled_from(group) for group in
                   (COMMANDISH, NAMED, NUMBERS, EDGES, NEAR_MISSES, SEPARATORS)))


@st.composite
def token_lists(draw: st.DrawFn, accounts: tuple[Account, ...]) -> list[str]:
    """Words from VOCABULARY: at random, or a valid command one step off (a word added,
    dropped, or replaced by one of its kind), or a few steps off: near the grammar is
    where mistakes hide. Sometimes a separator and a reason after them."""
    how = draw(st.sampled_from(["random", "append", "drop", "replace", "edits"]))
    if how == "random":
        return draw(st.lists(st.sampled_from(VOCABULARY), max_size=5))
    kinds = bases(accounts)
    tokens = list(draw(st.sampled_from(kinds[draw(st.sampled_from(sorted(kinds)))])))
    at = draw(st.integers(0, max(len(tokens) - 1, 0)))
    match how:
        case "append":
            tokens.append(draw(WORD))
        case "drop" if tokens:
            del tokens[at]
        case "replace" if tokens:
            tokens[at] = draw(st.one_of(WORD, alike(tokens[at])))
        case "edits":
            for _ in range(draw(st.integers(1, 3))):
                at, swap = draw(st.integers(0, len(tokens))), draw(st.booleans())
                if swap and at < len(tokens):
                    tokens[at] = draw(WORD)
                else:
                    tokens.insert(at, draw(WORD))
    if draw(st.booleans()):
        tokens += [draw(st.sampled_from(SEPARATORS)), *draw(st.lists(WORD, max_size=2))]
    return tokens


def alike(token: str) -> st.SearchStrategy[str]:
    """Words that could be mistaken for `token`: numbers for a number, and so on."""
    if token.isdigit():
        return st.sampled_from(["0", "00", "1", "49", "50", "51", "051", "-1", "+5", "60"])
    if token.startswith("ar-"):
        return st.sampled_from([w for w in VOCABULARY if "ar" in w.lower()])
    if token in COMMAND_WORDS:
        return st.sampled_from(COMMANDISH + NEAR_MISSES)
    return st.sampled_from(NAMED + NEAR_MISSES + EDGES)


@functools.cache
def bases(accounts: tuple[Account, ...]) -> dict[str, list[tuple[str, ...]]]:
    """Valid commands to start from, by action (a few counts only)."""
    kinds: dict[str, list[tuple[str, ...]]] = {"cancel": [("cancel", "ar-1f3a9c2e")]}
    for keys, command in sorted(valid_table(accounts).items()):
        if command.action is not Action.HISTORY or command.count in (1, 10, 50):
            kinds.setdefault(command.action, []).append(keys)
    return kinds


CASES = FIXED.flatmap(lambda accounts: st.tuples(st.just(accounts), token_lists(accounts)))
ID_CHARS = set(string.digits + string.ascii_lowercase)


@functools.cache
def valid_table(accounts: tuple[Account, ...]) -> dict[tuple[str, ...], Command]:
    """Every valid command part (as lowercase words) except `cancel ID`, and its meaning."""
    table: dict[tuple[str, ...], Command] = {
        (): Command(Action.HELP), ("help",): Command(Action.HELP),
        ("pending",): Command(Action.PENDING), ("status",): Command(Action.STATUS),
        ("history",): Command(Action.HISTORY),
    }
    live = [a for a in accounts if not a.demo]
    for a in accounts:
        for verb in ("on", "off"):
            table[(verb, a.name)] = table[(a.name, verb)] = Command(Action(verb), a)
        for key in (("status", a.name), (a.name, "status"), (a.name,)):
            table[key] = Command(Action.STATUS, a)
        table[("history", a.name)] = Command(Action.HISTORY, a)
    if len(live) == 1:
        table[("on",)] = Command(Action.ON, live[0])
        table[("off",)] = Command(Action.OFF, live[0])
    for n in range(1, 51):
        for number in (str(n), "0" + str(n), "00" + str(n)):
            for a in accounts:
                table[("history", a.name, number)] = Command(Action.HISTORY, a, count=n)
            # an account's name wins over a count
            table.setdefault(("history", number), Command(Action.HISTORY, count=n))
    return table


def is_request_id(key: str) -> bool:
    rest = key[3:]
    return key[:3] == "ar-" and 1 <= len(rest) <= 32 and set(rest) <= ID_CHARS


def recognize(keys: tuple[str, ...], table: dict[tuple[str, ...], Command]) -> Command | None:
    if keys in table:
        return table[keys]
    if len(keys) == 2 and keys[0] == "cancel" and is_request_id(keys[1]):
        return Command(Action.CANCEL, request_id=keys[1])
    return None


def could_continue(keys: tuple[str, ...], accounts: tuple[Account, ...]) -> bool:
    """Some valid command starts with these words."""
    if keys[:1] == ("cancel",) and len(keys) <= 2:
        return len(keys) == 1 or is_request_id(keys[1])
    return keys in starts(accounts)


@functools.cache
def starts(accounts: tuple[Account, ...]) -> frozenset[tuple[str, ...]]:
    """Every beginning of every command in valid_table."""
    return frozenset(keys[:n] for keys in valid_table(accounts) for n in range(len(keys) + 1))


def visible(text: str) -> str:
    """What a reader sees: no control, format (zero-width, direction marks), private-use
    or surrogate characters; white space stays."""
    return "".join(c for c in text
                   if c.isspace() or unicodedata.category(c) not in ("Cc", "Cf", "Co", "Cs"))


def split_tokens(tokens: list[str]) -> tuple[list[str], str | None]:
    for i, token in enumerate(tokens):
        if token in SEPARATORS:
            return tokens[:i], " ".join(tokens[i + 1:])
    return tokens, None


def keys_of(words: list[str]) -> tuple[str, ...]:
    """Lowercased words; a non-ASCII word becomes a key nothing matches."""
    return tuple(w.lower() if w.isascii() else "\x00" + w for w in words)


def oracle(tokens: list[str], accounts: tuple[Account, ...],
           require_reason: bool) -> Command | None:
    words, reason = split_tokens(tokens)
    command = recognize(keys_of(words), valid_table(accounts))
    if command is None:
        return None
    if command.action not in CHANGES:
        return None if reason is not None else command
    if require_reason and not reason:
        return None
    return replace(command, reason=reason or "")


@settings(max_examples=1000, deadline=None)
@given(CASES, st.booleans())
def test_exactly_the_grammar_is_accepted(case: tuple[tuple[Account, ...], list[str]],
                                         require_reason: bool) -> None:
    accounts, tokens = case
    text = " ".join(tokens)
    expected = oracle(tokens, accounts, require_reason)
    if expected is not None:
        assert parse(text, accounts, require_reason=require_reason) == expected
        return
    message = message_of(text, accounts, require_reason)
    assert "<" not in message and ">" not in message
    words, _ = split_tokens(tokens)
    keys, table = keys_of(words), valid_table(accounts)
    breaking = next((i for i in range(len(keys))
                     if not could_continue(keys[:i + 1], accounts)), None)
    if breaking is not None:  # the first word that can't be part of a command is named
        assert f"“{quote(words[breaking], 20)}”" in message
    elif recognize(keys, table) is not None:  # a good command with a bad reason
        assert "reason" in message
    else:  # an unfinished command: `on` (which account?) or `cancel` (which request?)
        assert "/autorepay " + keys[0] in message


def test_the_oracle_is_not_trivial() -> None:
    """The oracle itself, on a few texts whose meaning is known."""
    assert oracle(["desk-a", "on", "--", "Why"], DESKS, True) == \
        Command(Action.ON, DESKS[1], reason="Why")
    assert oracle(["on"], TRICKY, False) == Command(Action.ON, TRICKY[0])
    assert oracle(["history", "7"], TRICKY, False) == Command(Action.HISTORY, TRICKY[0])
    assert oracle(["history", "8"], TRICKY, False) == Command(Action.HISTORY, count=8)
    assert oracle(["cancel", "AR-00FF"], DEFAULT, False) == \
        Command(Action.CANCEL, request_id="ar-00ff")
    for rejected in (["on"], ["on", "please"], ["status", "--"], ["history", "51"],
                     ["cancel", "ar-"], ["desk-a", "on", "--"]):
        assert oracle(rejected, DESKS, True) is None


# --- Boundaries, one argument at a time -------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.integers(0, 80), st.sampled_from(["", "0", "00", "+", "-"]),
       st.sampled_from([None, *DESKS]))
def test_history_counts_from_1_to_50(n: int, prefix: str, account: Account | None) -> None:
    word = prefix + str(n)
    text = " ".join(["history", *([account.name] if account else []), word])
    if prefix in ("", "0", "00") and 1 <= n <= 50:
        assert parse(text, DESKS) == Command(Action.HISTORY, account, count=n)
    else:
        assert f"“{word}”" in message_of(text, DESKS)


REQUEST_IDS = st.one_of(
    st.from_regex(r"[aA][rR]-[0-9a-zA-Z]{28,34}", fullmatch=True),
    st.from_regex(r"[aArR]{0,3}[-_]?[0-9a-zA-Z!_\u00e9]{0,4}", fullmatch=True),
).filter(lambda word: word != "" and "--" not in word)


@settings(max_examples=200, deadline=None)
@given(REQUEST_IDS)
def test_cancel_takes_exactly_the_request_ids(word: str) -> None:
    key = word.lower() if word.isascii() else word
    if is_request_id(key):
        assert parse(f"cancel {word}") == Command(Action.CANCEL, request_id=key)
    else:
        assert f"“{quote(word, 20)}”" in message_of(f"cancel {word}")


@settings(max_examples=100, deadline=None)
@given(st.integers(240, 260), st.integers(240, 260), GAP, EDGE, EDGE)
def test_reasons_up_to_500_characters(a: int, b: int, gap: str, lead: str, tail: str) -> None:
    reason = "r" * a + " " + "s" * b  # what is kept of the text after the separator
    text = "on main --" + lead + "r" * a + gap + "s" * b + tail
    if len(reason) <= 500:
        assert parse(text, DESKS) == Command(Action.ON, DESKS[0], reason=reason)
    else:
        assert "500" in message_of(text, DESKS)


# --- (3) Any text: a command or a short, safe usage error ------------------------------

RANDOM_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=8), SPACE),
             max_size=12).map("".join),
)
ANY_TEXT = st.one_of(  # (accounts, text)
    st.tuples(st.sampled_from([DEFAULT, DESKS]), RANDOM_TEXT),
    CASES.map(lambda case: (case[0], " ".join(case[1]))),
)


@settings(max_examples=600, deadline=None)
@given(ANY_TEXT, st.booleans())
def test_any_text_is_a_command_or_a_usage_error(case: tuple[tuple[Account, ...], str],
                                                require_reason: bool) -> None:
    accounts, text = case
    try:
        command = parse(text, accounts, require_reason=require_reason)
    except UsageError as exc:
        message = str(exc)
        assert 0 < len(message) < 200
        assert "<" not in message and ">" not in message  # no mentions or links echoed
        return
    assert isinstance(command, Command)
    if command.action in CHANGES:
        assert command.account in accounts
        assert len(command.reason) <= 500
        assert command.reason == " ".join(command.reason.split())
        assert command.reason or not require_reason
    else:
        assert command.reason == ""
    if command.action in (Action.STATUS, Action.HISTORY):
        assert command.account is None or command.account in accounts
    elif command.action not in CHANGES:
        assert command.account is None
    assert 1 <= command.count <= 50
    assert command.count == 10 or command.action is Action.HISTORY
    assert bool(command.request_id) == (command.action is Action.CANCEL)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters="-\u2014\u2013"),
               min_size=MAX_TEXT + 1, max_size=MAX_TEXT + 50))
def test_too_long_is_refused(text: str) -> None:
    assert "too long" in message_of(text)


# --- (4) Case and spacing don't matter --------------------------------------------------

@st.composite
def respelled(draw: st.DrawFn, tokens: list[str]) -> str:
    """The same tokens: other white space between them, other case before the reason."""
    words, reason = split_tokens(tokens)
    text = draw(EDGE)
    for token in words:
        text += draw(cased(token)) + draw(GAP)
    if reason is not None:
        text += tokens[len(words)] + draw(EDGE)
        text += "".join(token + draw(GAP) for token in tokens[len(words) + 1:])
    return text


@settings(max_examples=300, deadline=None)
@given(st.data(), CASES, st.booleans())
def test_case_and_spacing_do_not_matter(data: st.DataObject,
                                        case: tuple[tuple[Account, ...], list[str]],
                                        require_reason: bool) -> None:
    accounts, tokens = case
    text = data.draw(respelled(tokens))
    assert outcome(text, accounts, require_reason) == \
        outcome(" ".join(tokens), accounts, require_reason)
