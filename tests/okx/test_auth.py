"""Signing, checked against values computed outside this code base."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx

from okx import Credentials, OkxClient
from okx.auth import OkxAuth, timestamp

CREDS = Credentials("key-4411-abcdef", "my-hmac-secret-4411", "pass-phrase-77")
# 2020-12-08T09:08:57.715Z, the moment in OKX's documentation example
MOMENT = 1607418537.715
# Computed with `openssl dgst -sha256 -hmac my-hmac-secret-4411 -binary | base64`
# over timestamp + METHOD + requestPath (+query) + body:
OPENSSL_GET = "wgAl+QKbFYmgvGG6wdpHWIKLeQZ54sXvt/pzbX1AnWE="
OPENSSL_POST = "FxzaY6QkVWWbGIAqMPxV60RlG2YIvhfCNakRlERYTWU="


def independent_sign(secret: str, ts: str, method: str, path: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{ts}{method}{path}".encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


async def captured(request_fn: object, *, demo: bool = False) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [{"autoRepay": True}]})

    auth = OkxAuth(CREDS, demo=demo, now=lambda: MOMENT)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as client:
        await request_fn(client)  # type: ignore[operator]
    return seen[0]


def test_timestamp_is_iso_utc_with_milliseconds() -> None:
    assert timestamp(MOMENT) == "2020-12-08T09:08:57.715Z"
    assert timestamp(0) == "1970-01-01T00:00:00.000Z"


async def test_get_signature_covers_the_query_string() -> None:
    request = await captured(
        lambda c: c.get("https://www.okx.com/api/v5/account/balance", params={"ccy": "BTC"}))
    assert request.headers["OK-ACCESS-SIGN"] == OPENSSL_GET
    assert request.headers["OK-ACCESS-SIGN"] == independent_sign(
        CREDS.secret, "2020-12-08T09:08:57.715Z", "GET", "/api/v5/account/balance?ccy=BTC", b"")
    assert request.headers["OK-ACCESS-TIMESTAMP"] == "2020-12-08T09:08:57.715Z"
    assert request.headers["OK-ACCESS-KEY"] == CREDS.api_key
    assert request.headers["OK-ACCESS-PASSPHRASE"] == CREDS.passphrase
    assert "x-simulated-trading" not in request.headers


async def test_post_signature_is_over_the_exact_body_bytes() -> None:
    request = await captured(lambda c: c.post(
        "https://www.okx.com/api/v5/account/set-auto-repay", content=b'{"autoRepay":true}'),
        demo=True)
    assert request.content == b'{"autoRepay":true}'
    assert request.headers["OK-ACCESS-SIGN"] == OPENSSL_POST
    assert request.headers["x-simulated-trading"] == "1"


async def test_client_signs_what_it_sends() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [{"autoRepay": False}]})

    transport = httpx.MockTransport(handler)
    async with OkxClient(CREDS, transport=transport, clock=lambda: MOMENT) as client:
        assert await client.set_auto_repay(False) is False
    request = seen[0]
    assert json.loads(request.content) == {"autoRepay": False}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["OK-ACCESS-SIGN"] == independent_sign(
        CREDS.secret, "2020-12-08T09:08:57.715Z", "POST", "/api/v5/account/set-auto-repay",
        request.content)


def test_credentials_never_show_secret_or_passphrase() -> None:
    for text in (repr(CREDS), str(CREDS), repr(OkxClient(CREDS)), f"{CREDS}"):
        assert CREDS.secret not in text
        assert CREDS.passphrase not in text
        assert CREDS.api_key not in text  # masked too: a key is half a credential
