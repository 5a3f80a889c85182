"""Long listings stay within what Slack accepts: 50 blocks, 3 000 characters a section."""

from __future__ import annotations

from handlers.listings import listing


def test_a_listing_too_long_for_one_message_is_cut_and_says_how_many_more() -> None:
    lines = [f"• `ar-{n:08x}` " + "&amp;" * 245 for n in range(120)]  # ~1 240 chars each
    message = listing("Waiting for approval (120):", lines).payload()
    blocks = message["blocks"]
    assert len(blocks) <= 50
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(len(text) <= 3000 for text in texts)
    shown = sum(text.count("• `ar-") for text in texts)
    assert 0 < shown < 120
    assert blocks[-1]["type"] == "context"
    assert f"and {120 - shown} more not shown" in blocks[-1]["elements"][0]["text"]
    assert len(message["text"]) <= 3000 and message["text"].endswith("&amp;")  # whole lines


def test_a_short_listing_is_shown_whole() -> None:
    lines = [f"• line {n}" for n in range(50)]
    message = listing("Fifty:", lines).payload()
    assert [b["type"] for b in message["blocks"]] == ["section", "section"]
    assert message["text"] == "Fifty:\n" + "\n".join(lines)
