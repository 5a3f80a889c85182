"""Work in flight: acknowledgements Slack is waiting for, and the slower work after them.

Bolt runs listeners after ack() in tasks it does not hand us, so listeners register
their work here (`track`), and shutdown waits, bounded, for it to drain.

Acknowledgements have a hard deadline (Slack's 3 s) and the work after them has none
that a person would notice in milliseconds, so tracked work first waits, at most
`ack_priority` seconds, until no request is being acknowledged. Under a burst of
commands the acks go out first instead of queueing behind OKX and Slack calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Inflight:
    def __init__(self, ack_priority: float = 0.25) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._acking = 0
        self._acks_done = asyncio.Event()
        self._acks_done.set()
        self._ack_priority = ack_priority

    @property
    def count(self) -> int:
        return self._count

    @asynccontextmanager
    async def acking(self) -> AsyncIterator[None]:
        """Around handling one request from Slack, up to its acknowledgement."""
        self._acking += 1
        self._acks_done.clear()
        try:
            yield
        finally:
            self._acking -= 1
            if self._acking == 0:
                self._acks_done.set()

    @asynccontextmanager
    async def track(self, *, after_acks: bool = True) -> AsyncIterator[None]:
        """Around work after an ack; with `after_acks`, it starts once pending acks are
        out (bounded wait). Clicks skip that: they come one at a time from people, and
        Bolt returns each ack only on its next 10 ms poll, which the wait would add."""
        self._count += 1
        self._idle.clear()
        try:
            if after_acks:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acks_done.wait(), self._ack_priority)
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until no work is in flight; False if `timeout` passed first."""
        if self._count == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
