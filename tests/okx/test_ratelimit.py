"""The limiter, on a clock that only moves when it sleeps."""

from __future__ import annotations

import asyncio

import pytest

from okx import RateLimiter
from tests.fakes.clock import FakeTime


def max_in_any_window(times: list[float], period: float) -> int:
    return max(sum(1 for t in times if start <= t < start + period) for start in times)


async def test_burst_of_twenty_is_spread_five_per_two_seconds() -> None:
    clock = FakeTime()
    limiter = RateLimiter(max_calls=5, period=2.0, clock=clock.monotonic, sleep=clock.sleep)
    started: list[float] = []

    async def call() -> None:
        async with limiter.slot():
            started.append(clock.now)

    await asyncio.gather(*(call() for _ in range(20)))
    assert len(started) == 20
    assert max_in_any_window(started, 2.0) == 5
    assert started[-1] - started[0] == pytest.approx(6.0)  # 4 windows: t=0, 2, 4, 6


async def test_a_slot_counts_until_period_after_the_answer() -> None:
    clock = FakeTime()
    limiter = RateLimiter(max_calls=1, period=2.0, clock=clock.monotonic, sleep=clock.sleep)
    async with limiter.slot():
        clock.now += 0.5  # the request took half a second
    async with limiter.slot():
        pass
    assert clock.sleeps == [pytest.approx(2.0)]  # 2 s after the answer, not after the start


async def test_waits_for_a_slot_still_in_flight() -> None:
    clock = FakeTime()
    limiter = RateLimiter(max_calls=1, period=2.0, clock=clock.monotonic, sleep=clock.sleep)
    order: list[str] = []
    release = asyncio.Event()

    async def slow() -> None:
        async with limiter.slot():
            order.append("slow starts")
            await release.wait()
        order.append("slow done")

    async def quick() -> None:
        async with limiter.slot():
            order.append("quick starts")

    tasks = [asyncio.create_task(slow()), asyncio.create_task(quick())]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order == ["slow starts"]
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["slow starts", "slow done", "quick starts"]


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        RateLimiter(max_calls=0)
