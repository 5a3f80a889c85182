"""SPEC §3.9: an OkxError's text is for traders; what an operator needs is kept apart."""

from __future__ import annotations

import re

import httpx
import pytest

from okx import Credentials, OkxClient, OkxError, OkxProtocolError, OkxUnavailableError
from okx.client import error_for_status
from okx.errors import EXPLANATIONS, error_for
from tests.fakes.clock import FakeTime

OPERATOR_TEXT = re.compile(r"\b(?:OKX|SLACK|AUTOREPAY)_[A-Z0-9_]+|python -m bot"
                           r"|\b[A-Z][a-zA-Z]+(?:Error|Exception)\b|Traceback")
CREDS = Credentials("key-errors-0001", "secret", "pass")


def trader_text(exc: OkxError) -> str:
    return f"{exc} {exc.explanation}"


@pytest.mark.parametrize("code", sorted(EXPLANATIONS))
def test_no_explanation_holds_operator_text(code: str) -> None:
    assert not OPERATOR_TEXT.search(trader_text(error_for(code, "whatever OKX said")))


@pytest.mark.parametrize("code", ["50111", "50119"])
def test_unknown_key_names_the_regional_sites_and_keeps_the_variable_for_the_log(
        code: str) -> None:
    exc = error_for(code, "Invalid OK-ACCESS-KEY")
    assert "eea.okx.com" in str(exc) and "us.okx.com" in str(exc)
    assert "ask whoever runs the bot" in str(exc)
    assert "OKX_BASE_URL" not in trader_text(exc)
    assert "OKX_BASE_URL" in exc.operator_hint and "https://eea.okx.com" in exc.operator_hint


def test_okx_codes_read_as_one_sentence_with_the_code() -> None:
    text = str(error_for("51010", "You can't complete this request"))
    assert text == ("This account is not in Spot mode, so auto repay cannot be set "
                    "(OKX code 51010).")
    assert error_for("51010", "").operator_hint == ""


async def test_network_failure_is_words_not_an_exception_class() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake_time = FakeTime()
    async with OkxClient(CREDS, transport=httpx.MockTransport(refuse),
                         monotonic=fake_time.monotonic, sleep=fake_time.sleep) as client:
        with pytest.raises(OkxUnavailableError) as caught:
            await client.get_account_config()
    exc = caught.value
    assert str(exc) == "OKX could not be reached (network error)."
    assert "ConnectError" not in trader_text(exc) and "OKX code" not in str(exc)
    assert exc.msg == "ConnectError"  # the detail, for the log


@pytest.mark.parametrize(("status", "words"), [
    (503, "OKX had a server error (HTTP 503)."),
    (404, "OKX gave an answer the bot could not read (HTTP 404)."),
])
def test_answers_without_okx_envelope_are_described(status: int, words: str) -> None:
    exc = error_for_status(status)
    assert str(exc) == words and exc.code == f"http-{status}"


def test_protocol_errors_are_described() -> None:
    exc = OkxProtocolError("protocol", "answer without autoRepay")
    assert str(exc) == "OKX gave an answer the bot could not read."
    assert exc.msg == "answer without autoRepay"


def test_unknown_okx_code_uses_okx_words() -> None:
    assert str(error_for("58350", "Insufficient balance")) == \
        "Insufficient balance (OKX code 58350)."
