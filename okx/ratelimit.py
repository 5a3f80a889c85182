"""Client-side limiters that keep bursts under OKX's limits per user ID (uid).

OKX counts requests as they arrive. We cannot see arrival times, so a slot counts from
when we started the request until `period` seconds after its answer came back: the
answer came after the arrival, so OKX never sees more than `max_calls` in any window.

OKX limits each endpoint separately (set-auto-repay and account/config: 5 / 2 s each),
per uid, so `AccountLimits` holds one `RateLimiter` per endpoint, and `LimitRegistry`
hands the same `AccountLimits` to every client of one uid (see OkxClient for how a
client learns its uid).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    def __init__(
        self,
        *,
        max_calls: int = 5,
        period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("max_calls must be >= 1 and period > 0")
        self._max_calls = max_calls
        self._period = period
        self._clock = clock
        self._sleep = sleep
        self._finished: deque[float] = deque()
        self._in_flight = 0
        self._queue = asyncio.Lock()  # first come, first served
        self._released = asyncio.Event()

    @asynccontextmanager
    async def slot(self, timeout: float | None = None) -> AsyncIterator[None]:
        """Wait for room under the limit, hold it while the request runs. Waiting longer
        than `timeout` raises TimeoutError: a burst must not queue up without end."""
        async with asyncio.timeout(timeout), self._queue:
            await self._wait_for_room()
            self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._finished.append(self._clock())
            self._released.set()

    def absorb(self, other: RateLimiter) -> None:
        """Count `other`'s recent requests here too (both on the same clock): used when
        a client's own limiter turns out to belong to a uid that already has one. Call
        it between requests: only finished ones are carried over."""
        self._finished = deque(sorted([*self._finished, *other._finished]))

    async def _wait_for_room(self) -> None:
        while True:
            now = self._clock()
            while self._finished and self._finished[0] <= now - self._period:
                self._finished.popleft()
            if self._in_flight + len(self._finished) < self._max_calls:
                return
            if self._finished:
                await self._sleep(self._finished[0] + self._period - now)
            else:  # every slot is still in flight: wait for one to finish
                self._released.clear()
                await self._released.wait()


class AccountLimits:
    """OKX's limits for one uid: a `RateLimiter` (5 / 2 s) per endpoint path."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[str, RateLimiter] = {}

    def slot(self, path: str, timeout: float | None = None
             ) -> AbstractAsyncContextManager[None]:
        """Wait for room on `path`'s limiter (at most `timeout`); hold it while the
        request runs."""
        return self._limiter(path).slot(timeout)

    def absorb(self, other: AccountLimits) -> None:
        """Count `other`'s recent requests here too, endpoint by endpoint."""
        for path, limiter in other._limiters.items():
            self._limiter(path).absorb(limiter)

    def _limiter(self, path: str) -> RateLimiter:
        if path not in self._limiters:
            self._limiters[path] = RateLimiter(clock=self._clock, sleep=self._sleep)
        return self._limiters[path]


class LimitRegistry:
    """`AccountLimits` by OKX uid, so that clients (accounts) of one uid share them.

    A client learns its uid only from its first account/config answer. Until then it
    uses limits of its own, one request at a time; then it calls `adopt`: the first
    client of a uid makes its own limits the uid's, any later one gets those and leaves
    its recent requests counted in them. Clients sharing a registry share a clock.
    """

    def __init__(self) -> None:
        self._by_uid: dict[str, AccountLimits] = {}

    def adopt(self, uid: str, own: AccountLimits) -> AccountLimits:
        """The limits of `uid`, from now on also those of the client that had `own`."""
        shared = self._by_uid.setdefault(uid, own)
        if shared is not own:
            shared.absorb(own)
        return shared


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LimitRegistry] = (
    weakref.WeakKeyDictionary())


def shared_registry() -> LimitRegistry:
    """The registry every client in this program uses unless it is given one.

    One per event loop: the limiters wait on asyncio primitives, which belong to the loop
    they were first used in (and tests, one loop each, then start from a clean slate).
    """
    loop = asyncio.get_running_loop()
    if loop not in _PER_LOOP:
        _PER_LOOP[loop] = LimitRegistry()
    return _PER_LOOP[loop]
