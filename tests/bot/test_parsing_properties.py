"""Property-based tests of the command parser (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.parsing import MAX_TEXT, Command, UsageError, parse

WORDS = ["on", "off", "status", "demo", "help", "ON", "Demo", "please", "<@U1>", "&", "é"]
SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\u3000"])


@given(st.text(max_size=300))
def test_any_text_is_a_command_or_a_usage_error(text: str) -> None:
    try:
        assert isinstance(parse(text), Command)
    except UsageError as exc:
        message = str(exc)
        assert len(message) < 120
        assert "<" not in message and ">" not in message  # no mentions or links echoed


@given(st.lists(st.sampled_from(WORDS), max_size=4), SPACE, SPACE)
def test_case_and_spacing_do_not_matter(words: list[str], sep: str, edge: str) -> None:
    plain = " ".join(words)
    spaced = edge + sep.join(word.swapcase() for word in words) + edge
    assert outcome(plain) == outcome(spaced)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(WORDS), max_size=4))
def test_accepted_exactly_the_grammar(words: list[str]) -> None:
    folded = [w.casefold() for w in words]
    valid = (folded in ([], ["help"], ["on"], ["off"], ["status"], ["demo"])
             or (len(folded) == 2 and folded[0] == "demo"
                 and folded[1] in ("on", "off", "status")))
    assert (outcome(" ".join(words)) != "error") == valid


@given(st.text(min_size=MAX_TEXT + 1, max_size=MAX_TEXT + 50))
def test_too_long_is_refused(text: str) -> None:
    assert outcome(text) == "error"


def outcome(text: str) -> Command | str:
    try:
        return parse(text)
    except UsageError:
        return "error"
