"""What OKX answers a write decides how the request ends, also when the read-back fails."""

from __future__ import annotations

from bot.approvals import Status
from handlers.blocks import APPROVE
from tests.bot.conftest import BOB, Harness, live
from tests.fakes.okx_server import CONFIG, SET_AUTO_REPAY


def test_okx_confirming_the_opposite_value_fails_even_without_a_read_back(bot: Harness) -> None:
    bot.command("on").followup()
    bot.okx.fail_next("contradict", path=SET_AUTO_REPAY)  # answers autoRepay false
    bot.okx.fail_next("http500", times=50, path=CONFIG)  # and the read-back can't be made
    bot.click(BOB, APPROVE)
    text = bot.thread_replies()[0]["text"]
    assert "could not be switched *ON*" in text and "is now *ON*" not in text
    assert "OKX answered that auto repay is OFF" in text
    [failed] = bot.store.with_status(Status.FAILED)
    assert failed.result is False and failed.error_code == "mismatch"
    assert live(bot.okx).auto_repay is False


def test_server_error_with_okx_body_during_the_write_is_an_unknown_outcome(
        bot: Harness) -> None:
    """Seen: HTTP 500 {"code": "50000"} was taken for a refusal: "Nothing was changed"."""
    bot.command("on").followup()
    bot.okx.fail_next("http500-json", times=50, path=SET_AUTO_REPAY)
    bot.click(BOB, APPROVE)
    text = bot.thread_replies()[0]["text"]
    assert "outcome is unknown" in text and "OKX had a server error (HTTP 500)" in text
    assert "Nothing was changed" not in text

