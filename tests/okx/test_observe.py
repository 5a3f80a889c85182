"""The client's `observe` hook (metrics): one call per HTTP request sent, with OKX's code
("0" on success), retries and failures included; nothing for a request never sent."""

from __future__ import annotations

import pytest

from okx import (
    Credentials,
    OkxAccountModeError,
    OkxClient,
    OkxUnavailableError,
    OkxWithdrawnError,
    RetryPolicy,
)
from okx.client import CONFIG_PATH, SET_AUTO_REPAY_PATH
from tests.fakes.clock import FakeTime
from tests.fakes.okx_server import FakeOkx

KEY = Credentials("observed-key-01", "observed-secret", "observed-pass")
Seen = list[tuple[str, str, float]]


@pytest.fixture
def okx(okx_server: FakeOkx) -> FakeOkx:
    okx_server.add_account(api_key=KEY.api_key, secret=KEY.secret, passphrase=KEY.passphrase)
    return okx_server


def observed_client(okx: FakeOkx, seen: Seen, **options: object) -> OkxClient:
    time = FakeTime()
    return OkxClient(KEY, base_url=okx.url, monotonic=time.monotonic, sleep=time.sleep,
                     observe=lambda *call: seen.append(call), **options)  # type: ignore[arg-type]


async def test_each_request_is_observed_with_its_code(okx: FakeOkx) -> None:
    seen: Seen = []
    async with observed_client(okx, seen) as client:
        await client.get_account_config()
        okx.fail_next("51010", path=SET_AUTO_REPAY_PATH)  # the account mode refuses it
        with pytest.raises(OkxAccountModeError):
            await client.set_auto_repay(True)
    assert [(path, code) for path, code, _ in seen] == [
        (CONFIG_PATH, "0"), (SET_AUTO_REPAY_PATH, "51010")]
    assert all(seconds >= 0 for *_, seconds in seen)


async def test_retries_are_observed_one_by_one(okx: FakeOkx) -> None:
    seen: Seen = []
    okx.fail_next("http500", times=2)
    async with observed_client(okx, seen) as client:
        await client.get_account_config()
    assert [code for _, code, _ in seen] == ["http-500", "http-500", "0"]


async def test_a_network_failure_is_observed_by_its_code(okx: FakeOkx) -> None:
    seen: Seen = []
    okx.fail_next("drop", times=5)
    async with observed_client(okx, seen, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(OkxUnavailableError):
            await client.get_account_config()
    assert [code for _, code, _ in seen] == ["network", "network"]


async def test_a_request_never_sent_is_not_observed(okx: FakeOkx) -> None:
    seen: Seen = []

    async def withdrawn() -> bool:
        return False

    async with observed_client(okx, seen) as client:
        await client.get_account_config()  # (learns the uid first)
        with pytest.raises(OkxWithdrawnError):
            await client.set_auto_repay(True, proceed=withdrawn)
    assert [path for path, _, _ in seen] == [CONFIG_PATH]
