"""Running `python -m bot` as a real process against the loopback stand-ins."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.bot.conftest import APPROVALS, OKX_ENV, SIGNING_SECRET
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_server import FakeSlack

ROOT = Path(__file__).resolve().parents[2]


def bot_process(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    return subprocess.Popen([sys.executable, "-m", "bot", *args], env={**base, **env},
                            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(slack: FakeSlack, okx: FakeOkx, port: int) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url, "AUTOREPAY_APPROVAL_CHANNEL": APPROVALS,
        "AUTOREPAY_REQUESTERS": "U0ALICE01", "AUTOREPAY_APPROVERS": "U0BOB0001",
        "OKX_BASE_URL": okx.url, "AUTOREPAY_HOST": "127.0.0.1", "PORT": str(port), **OKX_ENV,
    }


def wait_ready(process: subprocess.Popen[str], port: int, timeout: float = 20.0) -> float:
    """Seconds until /healthz answered 200."""
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise AssertionError(f"bot exited: {process.communicate()[1]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError("bot did not become ready")
        time.sleep(0.02)  # waiting for another process to come up; no clock to inject


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    process.send_signal(sig)
    try:
        return process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
