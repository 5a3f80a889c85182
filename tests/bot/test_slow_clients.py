"""SPEC §8: slow or idle clients can't hold the HTTP server. Headers within a deadline,
the body within another, a cap on connections that drops idle ones first."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.bot.conftest import Harness

PARTIAL = b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nX-Slack-Signature: v0="


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(PARTIAL)  # headers never finished
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while chunk := sock.recv(4096):
            if b"408" in chunk:  # a body deadline answers before it hangs up
                continue
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.fixture
def stalled(harness: Harness) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        sockets: list[socket.socket] = []
        stack.callback(lambda: [s.close() for s in sockets])
        yield sockets


def test_a_flood_of_stalled_connections_cannot_stop_a_signed_command(
        harness: Harness, stalled: list[socket.socket]) -> None:
    bot = harness.start(server={"max_connections": 256})
    assert bot.server is not None
    stalled.extend(connect(bot.server.port) for _ in range(400))
    fresh = httpx.Client(timeout=3.0)  # Slack's deadline for the ack
    try:
        assert fresh.get(bot.server.url + "/healthz").status_code == 200
        reply = bot.command("status")
        assert reply.response.status_code == 200
        assert "Reading every account on OKX" in reply.ack_text
        assert bot.server.guard.open_count <= 256
    finally:
        fresh.close()
    assert "*live* (LIVE): auto repay *OFF*" in reply.followup()


def test_headers_must_arrive_in_time(harness: Harness,
                                     stalled: list[socket.socket]) -> None:
    bot = harness.start(server={"header_seconds": 0.3})
    assert bot.server is not None
    stalled.append(connect(bot.server.port))
    idle = socket.create_connection(("127.0.0.1", bot.server.port), timeout=5)
    stalled.append(idle)
    assert closed_by_server(stalled[0], within=5.0)
    assert closed_by_server(idle, within=5.0)


def test_the_body_must_follow_in_time(harness: Harness,
                                      stalled: list[socket.socket]) -> None:
    bot = harness.start(server={"body_seconds": 0.3})
    assert bot.server is not None
    sock = socket.create_connection(("127.0.0.1", bot.server.port), timeout=5)
    stalled.append(sock)
    sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 1000\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n\r\ntext=on")
    sock.settimeout(5.0)
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    assert closed_by_server(sock, within=5.0)


def test_kept_alive_connections_are_dropped_when_idle(harness: Harness) -> None:
    bot = harness.start(server={"header_seconds": 0.3})
    assert bot.server is not None
    with httpx.Client() as client:
        assert client.get(bot.server.url + "/healthz").status_code == 200
    assert bot.slack.wait_for(lambda: bot.server is not None
                              and bot.server.guard.open_count == 0, timeout=5)


def test_a_flood_of_slow_bodies_cannot_stop_a_signed_command(
        harness: Harness, stalled: list[socket.socket]) -> None:
    bot = harness.start(server={"max_connections": 32})
    assert bot.server is not None
    for _ in range(96):
        sock = socket.create_connection(("127.0.0.1", bot.server.port), timeout=5)
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 100000\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\nt")
        stalled.append(sock)
    fresh = httpx.Client(timeout=3.0)  # Slack's deadline for the ack
    try:
        assert fresh.get(bot.server.url + "/healthz").status_code == 200
        reply = bot.command("status")
        assert reply.response.status_code == 200
    finally:
        fresh.close()
    assert "*live* (LIVE): auto repay *OFF*" in reply.followup()


@pytest.mark.parametrize("headers", [
    b"X-Big: " + b"a" * 5000 + b"\r\n",
    b"".join(b"X-H%d: v\r\n" % i for i in range(60)),
], ids=["one-long-header", "too-many-headers"])
def test_oversized_headers_are_refused_not_held(harness: Harness, headers: bytes,
                                                stalled: list[socket.socket],
                                                caplog: pytest.LogCaptureFixture) -> None:
    bot = harness.start()
    assert bot.server is not None
    sock = socket.create_connection(("127.0.0.1", bot.server.port), timeout=5)
    stalled.append(sock)
    sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n" + headers)
    answer = sock.recv(4096)
    assert answer.split(b" ")[1] in (b"400", b"431")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
