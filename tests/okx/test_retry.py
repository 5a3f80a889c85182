"""Backoff and the overall deadline, on a fake clock (no real waiting)."""

from __future__ import annotations

import random

import httpx
import pytest

from okx import Credentials, OkxClient, OkxUnavailableError, RetryPolicy
from okx.errors import outcome_uncertain
from tests.fakes.clock import FakeTime

CREDS = Credentials("key-retry-0001", "secret", "pass")


@pytest.mark.parametrize(("code", "uncertain"), [
    ("network", True), ("http-503", True), ("50001", True), ("50004", True),
    ("50011", True), ("50120", False), ("51010", False), ("50101", False),
    ("http-403", False), ("mismatch", False), ("99999", False),
    ("http-500", True), ("undecodable", True), ("unsendable", False), ("protocol", False),
])
def test_which_failures_leave_the_outcome_uncertain(code: str, uncertain: bool) -> None:
    assert outcome_uncertain(code) is uncertain


def test_backoff_grows_is_jittered_and_capped() -> None:
    policy = RetryPolicy(rng=random.Random(7))
    delays = [policy.backoff(n) for n in range(1, 9)]
    ceilings = [0.25, 0.5, 1, 2, 4, 4, 4, 4]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jitter: no two the same


async def test_every_attempt_timing_out_still_ends_within_30_seconds() -> None:
    """Each attempt hangs for its whole timeout; the deadline shortens the last ones."""
    fake_time = FakeTime()
    timeouts: list[float] = []

    def hang(request: httpx.Request) -> httpx.Response:
        timeout = request.extensions["timeout"]["read"]
        timeouts.append(timeout)
        fake_time.now += timeout
        raise httpx.ReadTimeout("timed out", request=request)

    started = fake_time.now
    async with OkxClient(CREDS, transport=httpx.MockTransport(hang),
                         monotonic=fake_time.monotonic, sleep=fake_time.sleep) as client:
        with pytest.raises(OkxUnavailableError) as caught:
            await client.set_auto_repay(True)
    assert caught.value.code == "network"
    assert fake_time.now - started <= 25.0
    assert timeouts[0] == 10.0 and timeouts[-1] < 10.0
