"""A client-side limiter that keeps a burst of writes under OKX's per-account limit.

OKX counts requests as they arrive. We cannot see arrival times, so a slot counts from
when we started the request until `period` seconds after its answer came back: the
answer came after the arrival, so OKX never sees more than `max_calls` in any window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

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
    async def slot(self) -> AsyncIterator[None]:
        """Wait for room under the limit, hold it while the request runs."""
        async with self._queue:
            await self._wait_for_room()
            self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._finished.append(self._clock())
            self._released.set()

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
