"""SPEC §4: set-auto-repay and account/config each stay within 5 requests / 2 s per OKX
user ID, also when several accounts (clients) share one uid."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from okx import Credentials, LimitRegistry, OkxClient, OkxRateLimitError, RetryPolicy
from okx.client import CONFIG_PATH
from tests.fakes.clock import FakeTime
from tests.fakes.okx_server import FakeOkx

UID = "448812345678"
FIRST = Credentials("first-key-0001", "first-secret", "first-pass")
SECOND = Credentials("second-key-0002", "second-secret", "second-pass")
OTHER = Credentials("other-key-0003", "other-secret", "other-pass")


def max_in_any_window(times: list[float], period: float = 2.0) -> int:
    return max(sum(1 for t in times if start <= t < start + period) for start in times)


async def test_burst_of_config_reads_through_two_clients_of_one_uid(okx_server: FakeOkx) -> None:
    """Real time on purpose: the loopback OKX counts 5 / 2 s per uid as OKX does (about 6 s).

    No registry is passed: clients in one program share one by default."""
    for creds in (FIRST, SECOND):
        okx_server.add_account(api_key=creds.api_key, secret=creds.secret,
                               passphrase=creds.passphrase, uid=UID)
    async with OkxClient(FIRST, base_url=okx_server.url) as first, \
            OkxClient(SECOND, base_url=okx_server.url) as second:
        started = time.monotonic()
        reads = [c.get_account_config() for _ in range(10) for c in (first, second)]
        configs = await asyncio.gather(*reads)
        elapsed = time.monotonic() - started
    assert {config.uid for config in configs} == {UID}
    assert okx_server.codes(CONFIG_PATH).count("50011") == 0
    assert len(okx_server.codes(CONFIG_PATH)) == 20
    assert 5.9 <= elapsed <= 6.9


# --- on a fake clock: when each request reached OKX ------------------------------------------
class Okx:
    """A MockTransport OKX that notes, per uid and path, the (fake) time each request came."""

    def __init__(self, fake_time: FakeTime, uids: dict[str, str]) -> None:
        self.fake_time = fake_time
        self.uids = uids  # api key → uid
        self.arrivals: dict[tuple[str, str], list[float]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        uid = self.uids[request.headers["OK-ACCESS-KEY"]]
        self.arrivals.setdefault((uid, request.url.path), []).append(self.fake_time.now)
        item = {"uid": uid, "acctLv": "1", "enableSpotBorrow": True,
                "spotBorrowAutoRepay": True, "autoRepay": True}
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [item]})

    def client(self, creds: Credentials, limits: LimitRegistry) -> OkxClient:
        return OkxClient(creds, transport=httpx.MockTransport(self), limits=limits,
                         monotonic=self.fake_time.monotonic, sleep=self.fake_time.sleep)


Call = Callable[[OkxClient], Awaitable[object]]
READ: Call = OkxClient.get_account_config


async def write(client: OkxClient) -> object:
    return await client.set_auto_repay(True)


@pytest.mark.parametrize("call", [READ, write], ids=["config", "set-auto-repay"])
async def test_clients_of_one_uid_share_each_endpoint_limit(call: Call) -> None:
    fake_time = FakeTime()
    okx = Okx(fake_time, {FIRST.api_key: UID, SECOND.api_key: UID})
    limits = LimitRegistry()
    async with okx.client(FIRST, limits) as first, okx.client(SECOND, limits) as second:
        await asyncio.gather(first.get_account_config(), second.get_account_config())
        await asyncio.gather(*(call(c) for _ in range(10) for c in (first, second)))
    for arrivals in okx.arrivals.values():
        assert max_in_any_window(arrivals) <= 5
    assert sum(map(len, okx.arrivals.values())) == 22


async def test_before_the_uid_is_known_a_client_sends_one_request_at_a_time() -> None:
    """So that two clients of one uid, both still unaware of it, can't burst past OKX."""
    fake_time = FakeTime()
    okx = Okx(fake_time, {FIRST.api_key: UID, SECOND.api_key: UID})
    limits = LimitRegistry()
    async with okx.client(FIRST, limits) as first, okx.client(SECOND, limits) as second:
        await asyncio.gather(*(c.get_account_config() for _ in range(10) for c in (first, second)))
    arrivals = okx.arrivals[(UID, CONFIG_PATH)]
    assert max_in_any_window(arrivals) <= 5
    assert arrivals[-1] - arrivals[0] == pytest.approx(6.0)  # windows at t=0, 2, 4, 6


async def test_different_uids_do_not_slow_each_other() -> None:
    fake_time = FakeTime()
    okx = Okx(fake_time, {FIRST.api_key: UID, OTHER.api_key: "900000000001"})
    limits = LimitRegistry()
    async with okx.client(FIRST, limits) as first, okx.client(OTHER, limits) as other:
        await asyncio.gather(*(c.get_account_config() for _ in range(5) for c in (first, other)))
    assert fake_time.sleeps == []


async def test_a_burst_beyond_the_deadline_is_refused_not_queued_forever(
        okx_server: FakeOkx) -> None:
    """Reads that can't get a slot before the client's deadline are not sent at all (code
    "busy"): a flood of `status` commands can't pile up waiting tasks without end."""
    okx_server.add_account(api_key=FIRST.api_key, secret=FIRST.secret,
                           passphrase=FIRST.passphrase, uid=UID)
    quick = RetryPolicy(base_delay=0.01, max_delay=0.05, deadline=0.5)
    async with OkxClient(FIRST, base_url=okx_server.url, retry=quick,
                         limits=LimitRegistry()) as client:
        await client.get_account_config()  # the uid is known: reads go through its limiter
        results = await asyncio.wait_for(asyncio.gather(
            *(client.get_account_config() for _ in range(20)), return_exceptions=True),
            timeout=10)
    refused = [r for r in results if isinstance(r, OkxRateLimitError)]
    assert len(refused) == 16 and all(r.code == "busy" for r in refused)
    assert "try again in a moment" in str(refused[0])
    assert len([r for r in okx_server.requests if r.path == CONFIG_PATH]) == 5


async def test_once_its_uid_is_known_a_client_no_longer_sends_one_request_at_a_time() -> None:
    """The first client of a uid keeps its own limits as the uid's: it must still leave
    the one-at-a-time mode, or a read waits behind every slow write on that account."""
    write_arrived, release_write = asyncio.Event(), asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        item: dict[str, object] = {"uid": UID, "acctLv": "1", "enableSpotBorrow": True,
                                   "spotBorrowAutoRepay": True, "autoRepay": True}
        if request.url.path.endswith("set-auto-repay"):
            write_arrived.set()
            await release_write.wait()
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [item]})

    async with OkxClient(FIRST, transport=httpx.MockTransport(handler),
                         limits=LimitRegistry()) as client:
        await client.get_account_config()  # learns the uid
        write = asyncio.create_task(client.set_auto_repay(True))
        await write_arrived.wait()
        config = await asyncio.wait_for(client.get_account_config(), 1.0)
        release_write.set()
        assert config.uid == UID and await write
