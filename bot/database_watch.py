"""Whether the database answers: a round trip every few seconds while the bot runs.

While it doesn't, /healthz says 503 (a load balancer sends Slack's requests to a replica
that can work), and one line says so; when it answers again, one line says that, and
everything carries on by itself (pooled connections are tested before use, and every
loop retries). Commands during an outage are told to try again (handlers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("bot.database")

CHECK_EVERY_SECONDS = 2.0
CHECK_SECONDS = 5.0

# What a database that can't be reached (or a SQLite file that stays locked) raises,
# through SQLAlchemy (the drivers' own errors, OSError included, arrive wrapped). Not
# TimeoutError or OSError at large: those may come from OKX or Slack, and "the bot can't
# reach its records" would then be a wrong answer.
UNREACHABLE: tuple[type[Exception], ...] = (
    OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


def unreachable(exc: BaseException) -> bool:
    """The database could not be used just now (not a bug, not bad data)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, UNREACHABLE)


class DatabaseWatch:
    def __init__(self, ping: Callable[[], Awaitable[None]], describe: Callable[[Exception], str],
                 *, every: float = CHECK_EVERY_SECONDS,
                 on_return: Callable[[], None] = lambda: None) -> None:
        self._ping = ping
        self._describe = describe
        self._every = every
        self._on_return = on_return
        self.ok = True

    async def check(self) -> bool:
        try:
            await asyncio.wait_for(self._ping(), CHECK_SECONDS)
        except Exception as exc:
            if self.ok:
                log.error("the database can't be reached (%s): commands are answered with "
                          "'try again' and /healthz says 503 until it is back",
                          self._describe(exc))
            self.ok = False
            return False
        if not self.ok:
            log.info("the database answers again: back to work")
            self._on_return()
        self.ok = True
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._every)
