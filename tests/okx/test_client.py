"""OkxClient against the loopback OKX server, which checks signatures as OKX does."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from okx import (
    AccountConfig,
    Credentials,
    OkxAccountModeError,
    OkxAuthError,
    OkxClient,
    OkxClockError,
    OkxEnvironmentError,
    OkxPermissionError,
    OkxProtocolError,
    OkxRequestError,
    OkxUnavailableError,
    OkxWithdrawnError,
)
from okx.client import Call, Endpoint
from okx.errors import outcome_uncertain
from tests.fakes.clock import FakeTime
from tests.fakes.okx_server import SET_AUTO_REPAY, FakeAccount, FakeOkx

LIVE = Credentials("live-key-0001", "live-secret-xyz", "live-pass-123")
DEMO = Credentials("demo-key-0002", "demo-secret-abc", "demo-pass-456")


@pytest.fixture
def okx(okx_server: FakeOkx) -> FakeOkx:
    okx_server.add_account(api_key=LIVE.api_key, secret=LIVE.secret, passphrase=LIVE.passphrase)
    okx_server.add_account(api_key=DEMO.api_key, secret=DEMO.secret, passphrase=DEMO.passphrase,
                           demo=True, uid="900000000001", label="demo")
    return okx_server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def client(server: FakeOkx, fake_time: FakeTime, creds: Credentials = LIVE, *,
           demo: bool = False, timeout: float = 10.0) -> OkxClient:
    """A client whose backoff sleeps are instant; signing uses the real wall clock."""
    return OkxClient(creds, demo=demo, base_url=server.url, timeout=timeout,
                     monotonic=fake_time.monotonic, sleep=fake_time.sleep)


def live_account(server: FakeOkx) -> FakeAccount:
    return server.accounts[LIVE.api_key]


async def test_reads_account_config(okx: FakeOkx, fake_time: FakeTime) -> None:
    live_account(okx).auto_repay = True
    async with client(okx, fake_time) as c:
        config = await c.get_account_config()
    assert config == AccountConfig(uid="448812345678", acct_lv="1", enable_spot_borrow=True,
                                   auto_repay=True, perm=("read_only", "trade"),
                                   label="treasury-bot")
    assert config.supports_auto_repay and config.mode_name == "Spot mode"


async def test_sets_auto_repay_and_returns_what_okx_confirms(okx: FakeOkx,
                                                             fake_time: FakeTime) -> None:
    async with client(okx, fake_time) as c:
        assert await c.set_auto_repay(True) is True
        assert live_account(okx).auto_repay is True
        assert await c.set_auto_repay(False) is False
    assert live_account(okx).auto_repay is False
    assert okx.requests[0].body == b'{"autoRepay":true}'


async def test_demo_uses_the_demo_account_and_header(okx: FakeOkx, fake_time: FakeTime) -> None:
    async with client(okx, fake_time, DEMO, demo=True) as c:
        assert await c.set_auto_repay(True) is True
    assert okx.accounts[DEMO.api_key].auto_repay is True
    assert live_account(okx).auto_repay is False
    assert okx.requests[0].headers["x-simulated-trading"] == "1"


@pytest.mark.parametrize(("creds", "demo"), [(LIVE, True), (DEMO, False)])
async def test_key_from_the_other_environment_is_refused_once(
        okx: FakeOkx, fake_time: FakeTime, creds: Credentials, demo: bool) -> None:
    async with client(okx, fake_time, creds, demo=demo) as c:
        with pytest.raises(OkxEnvironmentError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == "50101"
    assert "demo/live" in str(caught.value)
    assert len(okx.requests) == 1  # permanent: not retried


@pytest.mark.parametrize(("creds", "code"), [
    (Credentials(LIVE.api_key, "wrong-secret", LIVE.passphrase), "50113"),
    (Credentials(LIVE.api_key, LIVE.secret, "wrong-passphrase"), "50105"),
    (Credentials("unknown-key-99", LIVE.secret, LIVE.passphrase), "50111"),
])
async def test_bad_credentials_are_auth_errors_not_retried(
        okx: FakeOkx, fake_time: FakeTime, creds: Credentials, code: str) -> None:
    async with client(okx, fake_time, creds) as c:
        with pytest.raises(OkxAuthError) as caught:
            await c.get_account_config()
    assert caught.value.code == code
    assert len(okx.requests) == 1


async def test_unknown_key_mentions_regional_sites(okx: FakeOkx, fake_time: FakeTime) -> None:
    async with client(okx, fake_time, Credentials("nope-key-1234", "s", "p")) as c:
        with pytest.raises(OkxAuthError) as caught:
            await c.get_account_config()
    assert "eea.okx.com" in str(caught.value)


async def test_missing_trade_permission(okx: FakeOkx, fake_time: FakeTime) -> None:
    live_account(okx).perm = "read_only"
    async with client(okx, fake_time) as c:
        with pytest.raises(OkxPermissionError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == "50120"
    assert "Trade permission" in str(caught.value)
    assert len(okx.requests) == 1


async def test_ip_not_whitelisted(okx: FakeOkx, fake_time: FakeTime) -> None:
    live_account(okx).ip_allowed = False
    async with client(okx, fake_time) as c:
        with pytest.raises(OkxPermissionError) as caught:
            await c.get_account_config()
    assert caught.value.code == "50110"


async def test_wrong_account_mode(okx: FakeOkx, fake_time: FakeTime) -> None:
    live_account(okx).acct_lv = "3"
    async with client(okx, fake_time) as c:
        assert not (await c.get_account_config()).supports_auto_repay
        with pytest.raises(OkxAccountModeError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == "51010"
    assert "Spot mode" in str(caught.value)


async def test_clock_offset_is_resynced_once_and_kept(okx: FakeOkx,
                                                      fake_time: FakeTime) -> None:
    okx.clock_offset = 95.0  # OKX is 95 s ahead of us: outside the 30 s window
    async with client(okx, fake_time) as c:
        assert (await c.get_account_config()).uid == "448812345678"
        assert c.clock_offset == pytest.approx(95.0, abs=1.0)
        await c.set_auto_repay(True)
    paths = [(r.path, r.code) for r in okx.requests]
    assert paths == [("/api/v5/account/config", "50102"), ("/api/v5/public/time", "0"),
                     ("/api/v5/account/config", "0"), (SET_AUTO_REPAY, "0")]


async def test_clock_error_after_resync_is_raised(okx: FakeOkx, fake_time: FakeTime) -> None:
    okx.fail_next("50102", times=2)
    async with client(okx, fake_time) as c:
        with pytest.raises(OkxClockError):
            await c.get_account_config()
    assert [r.path for r in okx.requests].count("/api/v5/account/config") == 2


@pytest.mark.parametrize("fault", ["http500", "http500-json", "50001", "50004", "50013",
                                   "50011", "drop"])
async def test_transient_faults_are_retried(okx: FakeOkx, fake_time: FakeTime,
                                            fault: str) -> None:
    okx.fail_next(fault, times=2)
    async with client(okx, fake_time) as c:
        assert await c.set_auto_repay(True) is True
    assert okx.codes()[-1] == "0"
    assert len(fake_time.sleeps) == 2
    assert fake_time.sleeps[1] > fake_time.sleeps[0] * 0.99  # exponential, jittered


async def test_server_error_on_a_write_leaves_the_outcome_unknown_whatever_its_body(
        okx: FakeOkx, fake_time: FakeTime) -> None:
    """Seen: HTTP 500 with {"code": "50000"} was taken for a refusal ("Nothing was changed")."""
    okx.fail_next("http500-json", times=100)
    async with client(okx, fake_time) as c:
        with pytest.raises(OkxUnavailableError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == "http-500" and outcome_uncertain(caught.value.code)
    assert "OKX code 50000" in caught.value.msg  # OKX's words, for the log
    assert str(caught.value) == "OKX had a server error (HTTP 500)."
    assert len(okx.codes()) == 6


async def test_slow_answer_times_out_and_is_retried(okx: FakeOkx, fake_time: FakeTime) -> None:
    okx.fail_next("slow", seconds=2.0)
    async with client(okx, fake_time, timeout=0.2) as c:
        assert await c.set_auto_repay(True) is True
    assert len(okx.codes()) == 2


async def test_persistent_outage_ends_in_unavailable(okx: FakeOkx, fake_time: FakeTime) -> None:
    okx.fail_next("50001", times=100)
    started = fake_time.now
    async with client(okx, fake_time) as c:
        with pytest.raises(OkxUnavailableError) as caught:
            await c.set_auto_repay(True)
    assert caught.value.code == "50001"
    assert len(okx.codes()) == 6
    assert fake_time.now - started < 30


async def test_unknown_endpoint_is_refused_not_retried(okx: FakeOkx,
                                                        fake_time: FakeTime) -> None:
    async with client(okx, fake_time) as c:
        with pytest.raises(OkxRequestError):
            await c._call(Call(Endpoint("GET", "/api/v5/no/such/endpoint"), read=list))
    assert len(okx.requests) == 1


async def test_unexpected_answer_shape_is_a_protocol_error(okx: FakeOkx,
                                                           fake_time: FakeTime) -> None:
    okx.fail_next("0")  # {"code": "0", "data": []}: success without the item
    async with client(okx, fake_time) as c:
        with pytest.raises(OkxProtocolError):
            await c.set_auto_repay(True)


async def test_burst_of_twenty_writes_stays_under_okx_limit(okx: FakeOkx) -> None:
    """Real time on purpose: OKX's window is the thing under test (about 6 s)."""
    async with OkxClient(LIVE, base_url=okx.url) as c:
        started = time.monotonic()
        results = await asyncio.gather(*(c.set_auto_repay(i % 2 == 0) for i in range(20)))
        elapsed = time.monotonic() - started
    assert len(results) == 20
    assert okx.codes().count("50011") == 0
    assert len(okx.codes()) == 20
    assert 5.9 <= elapsed <= 6.9


async def test_log_lines_do_not_repeat_the_logger_name(
        okx: FakeOkx, fake_time: FakeTime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="okx")
    okx.clock_offset = 95.0
    okx.fail_next("50001", times=100, path=SET_AUTO_REPAY)
    async with client(okx, fake_time) as c:
        await c.get_account_config()
        with pytest.raises(OkxUnavailableError):
            await c.set_auto_repay(True)
    lines = [r.getMessage() for r in caplog.records if r.name == "okx"]
    assert f"POST {SET_AUTO_REPAY} attempt 1 failed code=50001" in "\n".join(lines)
    assert f"POST {SET_AUTO_REPAY} gave up after 6 attempts code=50001 msg='injected'" in lines
    assert any(line.startswith("clock re-synced offset=") for line in lines)
    assert any(line == "GET /api/v5/account/config -> HTTP 200" for line in lines)
    assert not [line for line in lines if line.startswith("okx ")]


async def test_a_write_is_asked_about_before_each_attempt_and_withdrawn_when_told(
        okx: FakeOkx, fake_time: FakeTime) -> None:
    """A paused replica whose job was taken over must not send its retry late: the
    go-ahead is asked right before every attempt."""
    okx.fail_next("50013", times=1)  # the first attempt fails and is retried
    answers = iter([True, False])
    asked: list[int] = []

    async def proceed() -> bool:
        asked.append(len(okx.requests))
        return next(answers)

    async with client(okx, fake_time) as c:
        with pytest.raises(OkxWithdrawnError):
            await c.set_auto_repay(True, proceed=proceed)
    assert asked == [0, 1]  # before the first attempt and before the retry
    assert okx.codes() == ["fault:50013"]  # the retry was never sent
    assert live_account(okx).auto_repay is False


async def test_a_go_ahead_that_fails_withdraws_the_write(okx: FakeOkx,
                                                         fake_time: FakeTime) -> None:
    async def broken() -> bool:
        raise ConnectionError("database gone")

    async with client(okx, fake_time) as c:
        with pytest.raises(OkxWithdrawnError) as withdrawn:
            await c.set_auto_repay(True, proceed=broken)
        assert withdrawn.value.code == "unconfirmed"
        assert await c.get_account_config()  # reads ask nothing
    assert okx.codes() == []
