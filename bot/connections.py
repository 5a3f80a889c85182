"""Limits on what a client of the HTTP server may hold (SPEC §8).

aiohttp reads request headers for as long as a client cares to send them, and accepts
every connection the kernel hands it, so a few hundred slow or idle clients could use up
every file descriptor. The guard sits between the listening socket and aiohttp's protocol:

- a connection has `header_seconds` to send its request headers (counted from the
  connect, and again from the end of each request on a kept-alive connection);
- at most `max_connections` are open; when one more arrives, the oldest connection that
  is not being served (waiting for headers, or still sending its body) is dropped to
  make room, so a flood of idle or slow connections can never lock a real request out;
- when accepting runs out of file descriptors anyway, the oldest such connections are
  dropped (`shed`).

The body deadline and the size limit are applied per request (`read_body`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bot.http")
REPORT_EVERY_SECONDS = 10.0


class _Connection:
    __slots__ = ("busy", "timer", "transport")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.busy = False  # its request has been read in full and is being served
        self.timer: asyncio.TimerHandle | None = None


class ConnectionGuard:
    def __init__(self, *, max_connections: int, header_seconds: float) -> None:
        self._max = max_connections
        self._header_seconds = header_seconds
        self._open: dict[asyncio.BaseTransport, _Connection] = {}  # oldest first
        self._dropped = 0
        self._reported_at = 0.0

    @property
    def open_count(self) -> int:
        return len(self._open)

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]
                         ) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(self, make())

    def opened(self, transport: asyncio.BaseTransport) -> None:
        connection = _Connection(transport)
        self._open[transport] = connection
        self._await_headers(connection)
        if len(self._open) > self._max:
            self._make_room(connection)

    def closed(self, transport: asyncio.BaseTransport) -> None:
        connection = self._open.pop(transport, None)
        if connection is not None and connection.timer is not None:
            connection.timer.cancel()

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """Headers are in: the header deadline no longer applies (the body has its own)."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None and connection.timer is not None:
            connection.timer.cancel()

    def request_read(self, transport: asyncio.BaseTransport | None) -> None:
        """The whole request is in: from now on the connection is not dropped for room."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.busy = True

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.busy = False
            self._await_headers(connection)

    def _await_headers(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        connection.timer = loop.call_later(self._header_seconds, self._drop, connection)

    def shed(self, share: float = 0.1) -> None:
        """Out of file descriptors: drop the oldest connections not being served."""
        idle = [c for c in self._open.values() if not c.busy]
        dropped = idle[:max(1, int(len(self._open) * share))]
        for connection in dropped:
            self._drop(connection)
        self._report(len(dropped), "file descriptors ran out")

    def _make_room(self, newcomer: _Connection) -> None:
        waiting = next((c for c in self._open.values() if not c.busy and c is not newcomer),
                       None)
        self._drop(waiting or newcomer)
        self._report(1, f"connection limit reached ({self._max} open)")

    def _report(self, dropped: int, why: str) -> None:
        self._dropped += dropped
        now = time.monotonic()
        if now - self._reported_at >= REPORT_EVERY_SECONDS:  # one line, not one per drop
            log.warning("%s: dropped %d connection(s) not being served", why, self._dropped)
            self._reported_at, self._dropped = now, 0

    def _drop(self, connection: _Connection) -> None:
        self.closed(connection.transport)
        connection.transport.abort()  # type: ignore[attr-defined]


class _GuardedProtocol(asyncio.Protocol):
    """Hands every event to aiohttp's protocol, telling the guard about opens and closes."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)
        self._guard.opened(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:  # anything else aiohttp may ask its protocol
        return getattr(self._inner, name)
