"""SPEC §4: nothing but OkxError leaves the client, whatever comes back (or fails to go out).

Unit tests over httpx.MockTransport: each handler plays an OKX (or a proxy in front of it)
that answers something odd.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from okx import Credentials, OkxClient, OkxError, OkxProtocolError, OkxUnavailableError
from okx.client import TIME_PATH
from okx.errors import outcome_uncertain
from tests.fakes.clock import FakeTime
from tests.fakes.okx_server import FakeOkx

CREDS = Credentials("key-odd-answers-01", "SECRET-odd-answers", "PASSPHRASE-odd-answers")
Handler = Callable[[httpx.Request], httpx.Response]
CONFIG_ITEM = {"uid": "448812345678", "acctLv": "1", "enableSpotBorrow": True,
               "spotBorrowAutoRepay": False, "perm": "read_only,trade", "label": "bot"}


def envelope(code: str = "0", data: Any = (), status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": "said OKX", "data": list(data)})


def client(handler: Handler, fake_time: FakeTime, creds: Credentials = CREDS,
           base_url: str = "https://www.okx.com") -> OkxClient:
    return OkxClient(creds, base_url=base_url, transport=httpx.MockTransport(handler),
                     monotonic=fake_time.monotonic, sleep=fake_time.sleep)


def counting(handler: Handler) -> tuple[Handler, list[str]]:
    seen: list[str] = []

    def count(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return handler(request)

    return count, seen


# --- a. any HTTP 5xx is a server error, whatever its body says ---------------------------
@pytest.mark.parametrize("answer", [
    envelope("50000", status=500),
    envelope("0", [{"autoRepay": True}], status=502),  # even "success"
    envelope("51010", status=503),  # even a refusal
    httpx.Response(504, text="<html>Gateway Timeout</html>"),
])
async def test_server_errors_are_retried_and_leave_a_write_unknown(
        answer: httpx.Response) -> None:
    handler, seen = counting(lambda request: answer)
    async with client(handler, FakeTime()) as c:
        with pytest.raises(OkxUnavailableError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == f"http-{answer.status_code}"
    assert outcome_uncertain(caught.value.code)
    assert len(seen) == 6  # retried


async def test_server_error_then_success_is_success() -> None:
    answers = iter([envelope("50000", status=500), envelope("0", [{"autoRepay": True}])])
    async with client(lambda request: next(answers), FakeTime()) as c:
        assert await c.set_auto_repay(True) is True


# --- b. undecodable bodies ----------------------------------------------------------------
def not_gzip(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")


async def test_undecodable_answer_to_a_write_leaves_the_outcome_unknown() -> None:
    async with client(not_gzip, FakeTime()) as c:
        with pytest.raises(OkxProtocolError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == "undecodable" and outcome_uncertain("undecodable")
    assert caught.value.msg == "DecodingError"  # for the log
    assert "DecodingError" not in str(caught.value)  # for traders: words
    assert isinstance(caught.value.__cause__, httpx.DecodingError)


async def test_undecodable_answer_to_a_read_is_a_protocol_error() -> None:
    async with client(not_gzip, FakeTime()) as c:
        with pytest.raises(OkxProtocolError):
            await c.get_account_config()


@pytest.mark.parametrize("body", [b"[" * 100_000, b"\xff\xfe not utf-8", b"null", b'"text"',
                                  b'{"code": "0", "data": {"uid": "1"}}', b"{}"])
async def test_unreadable_bodies_are_protocol_errors(body: bytes) -> None:
    handler, seen = counting(lambda request: httpx.Response(200, content=body))
    async with client(handler, FakeTime()) as c:
        with pytest.raises(OkxProtocolError):
            await c.get_account_config()
    assert len(seen) == 1  # an answer that came but can't be read is not retried


@pytest.mark.parametrize("item", [
    {**CONFIG_ITEM, "uid": None},
    {**CONFIG_ITEM, "acctLv": {"nested": 1}},
    {**CONFIG_ITEM, "spotBorrowAutoRepay": None},
    {key: value for key, value in CONFIG_ITEM.items() if key != "uid"},
])
async def test_odd_account_config_is_a_protocol_error(item: dict[str, Any]) -> None:
    async with client(lambda request: envelope("0", [item]), FakeTime()) as c:
        with pytest.raises(OkxProtocolError):
            await c.get_account_config()


@pytest.mark.parametrize("item", [{}, {"autoRepay": None}, {"autoRepay": "yes"},
                                  {"autoRepay": [True]}])
async def test_odd_write_confirmation_is_a_protocol_error(item: dict[str, Any]) -> None:
    async with client(lambda request: envelope("0", [item]), FakeTime()) as c:
        with pytest.raises(OkxProtocolError):
            await c.set_auto_repay(True)


# --- b. odd /public/time answers ------------------------------------------------------------
ODD_TIMES = [
    {"code": "0", "data": [{"ts": None}]},
    {"code": "0", "data": [{"ts": "soon"}]},
    {"code": "0", "data": [{"ts": ""}]},
    {"code": "0", "data": [{"ts": True}]},
    {"code": "0", "data": [{"ts": 1.5}]},
    {"code": "0", "data": [{"ts": [1700000000000]}]},
    {"code": "0", "data": [{"ts": "-1700000000000"}]},
    {"code": "0", "data": [{}]},
    {"code": "0", "data": []},
    {"code": "0", "data": {"ts": "1700000000000"}},
    {"code": "0", "data": "1700000000000"},
    {"code": "0", "data": [None]},
]


@pytest.mark.parametrize("answer", ODD_TIMES, ids=lambda answer: json.dumps(answer))
async def test_odd_server_time_is_a_protocol_error(answer: dict[str, Any]) -> None:
    async with client(lambda request: httpx.Response(200, json=answer), FakeTime()) as c:
        with pytest.raises(OkxProtocolError):
            await c.sync_clock()
        assert c.clock_offset == 0.0


@pytest.mark.parametrize("answer", ODD_TIMES[:3], ids=lambda answer: json.dumps(answer))
async def test_odd_server_time_during_a_resync_is_a_protocol_error(
        answer: dict[str, Any]) -> None:
    def okx(request: httpx.Request) -> httpx.Response:
        if request.url.path == TIME_PATH:
            return httpx.Response(200, json=answer)
        return envelope("50102")  # timestamp expired: the client re-syncs its clock

    async with client(okx, FakeTime()) as c:
        with pytest.raises(OkxProtocolError):
            await c.get_account_config()


async def test_a_good_server_time_sets_the_offset() -> None:
    ts = {"code": "0", "data": [{"ts": "4102444800000"}]}  # 2100-01-01
    async with client(lambda request: httpx.Response(200, json=ts), FakeTime()) as c:
        assert await c.sync_clock() > 0


# --- b. requests that can't go out -----------------------------------------------------------
def never(request: httpx.Request) -> httpx.Response:
    raise AssertionError("nothing should have been sent")


async def test_unusable_base_url_is_an_okx_error_not_retried() -> None:
    async with client(never, FakeTime(), base_url="https://[::1") as c:
        with pytest.raises(OkxError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == "unsendable" and not outcome_uncertain("unsendable")
    assert caught.value.msg == "InvalidURL"


async def test_credentials_that_cannot_be_sent_are_an_okx_error_without_the_secret(
        okx_server: FakeOkx) -> None:
    """A line break can't go in a header: h11 refuses it, quoting the value."""
    creds = Credentials(CREDS.api_key, CREDS.secret, "PASSPHRASE-line\nbreak")
    async with OkxClient(creds, base_url=okx_server.url) as c:
        with pytest.raises(OkxError) as caught:
            await c.get_account_config()
    exc = caught.value
    assert exc.code == "unsendable" and not exc.retryable
    assert okx_server.requests == []
    told = "".join(traceback.format_exception(exc))
    for text in (told, repr(exc), exc.msg, exc.explanation, exc.operator_hint):
        assert "PASSPHRASE-line" not in text


@pytest.mark.parametrize("error", [httpx.TooManyRedirects, httpx.HTTPError])
async def test_any_other_httpx_error_is_an_okx_error(error: type[httpx.HTTPError]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error("odd")

    async with client(fail, FakeTime()) as c:
        with pytest.raises(OkxError):
            await c.get_account_config()
