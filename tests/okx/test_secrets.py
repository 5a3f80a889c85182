"""Secrets stay out of logs (even at DEBUG, httpx's and httpcore's included), errors, reprs."""

from __future__ import annotations

import logging

import pytest

from okx import Credentials, OkxClient, OkxError
from tests.fakes.clock import FakeTime
from tests.fakes.okx_server import FakeOkx

CREDS = Credentials("key-for-secret-test", "SECRET-must-not-leak", "PASSPHRASE-must-not-leak")


async def test_no_secret_in_debug_logs_errors_or_reprs(
        okx_server: FakeOkx, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    okx_server.add_account(api_key=CREDS.api_key, secret=CREDS.secret,
                           passphrase=CREDS.passphrase)
    okx_server.clock_offset = 60.0
    okx_server.fail_next("50001")
    okx_server.fail_next("drop")
    fake_time = FakeTime()
    errors: list[OkxError] = []
    async with OkxClient(CREDS, base_url=okx_server.url, monotonic=fake_time.monotonic,
                         sleep=fake_time.sleep) as client:
        await client.get_account_config()
        await client.set_auto_repay(True)
        texts = [repr(client)]
    wrong = Credentials(CREDS.api_key, "SECRET-must-not-leak-2", CREDS.passphrase)
    async with OkxClient(wrong, base_url=okx_server.url) as client:
        try:
            await client.set_auto_repay(True)
        except OkxError as exc:
            errors.append(exc)
    assert errors and errors[0].code == "50113"
    texts += [caplog.text, *(f"{e!s} {e!r} {e.msg}" for e in errors)]
    assert [r for r in caplog.records if r.name == "okx"  # DEBUG was on
            and r.getMessage().startswith("POST /api/v5/account/set-auto-repay")]
    for text in texts:
        for secret in (CREDS.secret, CREDS.passphrase, wrong.secret):
            assert secret not in text
