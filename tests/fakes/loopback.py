"""Run an aiohttp application on 127.0.0.1 in a thread of its own.

The servers stay real HTTP servers on loopback, whatever event loop (if any) the test
itself runs, so the code under test talks to them exactly as it would to the real thing.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web


class LoopbackServer:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._changed = threading.Condition()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def build_app(self) -> web.Application:
        raise NotImplementedError

    def summary(self) -> list[str]:
        return []

    def _record(self, item: Any, into: list[Any]) -> None:
        """Keep what the server saw, and wake anyone waiting for it."""
        with self._changed:
            into.append(item)
            self._changed.notify_all()

    def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Block until `condition()` is truthy, re-checked whenever the server records."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := condition()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting; seen: {self.summary()}")
                self._changed.wait(left)
        return result

    def start(self) -> LoopbackServer:
        # Listening at once and without SO_REUSEADDR: with it, the kernel may hand the
        # same ephemeral port to another socket bound the same way (a bot process on a
        # port a test picked) until one of them listens, and the other's listen() fails.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._thread.start()
        self.call(self._serve(sock))
        return self

    def stop(self) -> None:
        self.call(self._shutdown())
        self.call(self._cancel_leftovers())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _cancel_leftovers(self) -> None:
        """Requests a fake held open on purpose end with the server."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, sock: socket.socket) -> None:
        # A fake may hold a request open on purpose; stopping must not wait long for it.
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
