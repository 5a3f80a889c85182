"""Running `python -m bot` as a real process against the loopback stand-ins."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.bot.conftest import APPROVALS, OKX_ENV, SIGNING_SECRET
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_server import FakeSlack

ROOT = Path(__file__).resolve().parents[2]


def bot_process(args: list[str], env: dict[str, str], cwd: Path,
                **popen: Any) -> subprocess.Popen[str]:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    return subprocess.Popen([sys.executable, "-m", "bot", *args], env={**base, **env},
                            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block lasts.

    The socket is bound but never listens, so no other test can take the port meanwhile
    (a port that was merely free a moment ago may be reused by a parallel test).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def bot_env(slack: FakeSlack, okx: FakeOkx, port: int) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url, "AUTOREPAY_APPROVAL_CHANNEL": APPROVALS,
        "AUTOREPAY_REQUESTERS": "U0ALICE01", "AUTOREPAY_APPROVERS": "U0BOB0001",
        "OKX_BASE_URL": okx.url, "AUTOREPAY_HOST": "127.0.0.1", "PORT": str(port), **OKX_ENV,
    }


def wait_ready(process: subprocess.Popen[str], port: int, timeout: float = 20.0,
               lines: Lines | None = None) -> float:
    """Seconds until /healthz answered 200. With `lines` (a reader of the process's
    stderr), its text is what a failure shows (communicate() would race the reader)."""
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            if lines is None:
                raise AssertionError(f"bot exited: {process.communicate()[1]}")
            lines.finish()
            raise AssertionError(f"bot exited with {process.returncode}: {lines.text}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError("bot did not become ready"
                                 + (f": {lines.text}" if lines is not None else ""))
        time.sleep(0.02)  # waiting for another process to come up; no clock to inject


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    process.send_signal(sig)
    try:
        return process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


class Lines:
    """A running process's stderr, read line by line in a thread, so a test can wait for a
    line while the process goes on."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        import threading

        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := [line for line in self.lines if text in line]) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    raise AssertionError(f"no {text!r} in: {self.text}")
                self._changed.wait(min(left, 0.5))
        return found

    def finish(self, timeout: float = 15.0) -> None:
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# --- several processes at once (tests/bot/test_replicas.py) -----------------------------
def end(process: subprocess.Popen[str], lines: Lines, sig: int = signal.SIGTERM,
        timeout: float = 15.0) -> tuple[int, str]:
    """Signal a process whose stderr a `Lines` reads, wait for it to exit and for its
    stderr to be read to the end: (exit code, stdout)."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    lines.finish()
    out = process.stdout.read() if process.stdout is not None else ""
    for pipe in (process.stdin, process.stdout, process.stderr if lines.ended else None):
        if pipe is not None:
            pipe.close()
    return process.returncode, out
