"""AUTOREPAY_HEALTH_PORT (SPEC §6, §9): in Socket Mode, /healthz and /metrics on a port
bound before anything slow; 503 until ready; nothing else there. A port in use is a
start-up problem (exit 2, one line). HTTP mode serves both on PORT and says the variable
is not used."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.bot.process import Lines, bot_env, bot_process, end, free_port, wait_ready
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_server import FakeSlack


@pytest.fixture
def socket_env(slack: FakeSlack, okx: FakeOkx) -> dict[str, str]:
    return {**bot_env(slack, okx, free_port()), "SLACK_APP_TOKEN": slack.app_token,
            "AUTOREPAY_HEALTH_PORT": str(free_port())}


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[str], Lines]]]:
    processes: list[tuple[subprocess.Popen[str], Lines]] = []
    yield processes
    for process, lines in processes:
        if process.stdout is not None and not process.stdout.closed:
            end(process, lines, signal.SIGKILL)


def start(env: dict[str, str], cwd: Path, started: list[tuple[subprocess.Popen[str], Lines]]
          ) -> tuple[subprocess.Popen[str], Lines]:
    process = bot_process([], env, cwd)
    started.append((process, Lines(process)))
    return started[-1]


def test_socket_mode_serves_healthz_and_metrics_on_the_health_port(
        socket_env: dict[str, str], slack: FakeSlack, tmp_path: Path,
        started: list[tuple[subprocess.Popen[str], Lines]]) -> None:
    slack.hold("auth.test")  # the start-up check waits for Slack: not ready yet
    process, lines = start(socket_env, tmp_path, started)
    base = f"http://127.0.0.1:{socket_env['AUTOREPAY_HEALTH_PORT']}"
    lines.wait_for("health port listening on")
    assert httpx.get(base + "/healthz").status_code == 503
    assert httpx.get(base + "/metrics").status_code == 200  # wanted most while starting
    slack.release()
    wait_ready(process, int(socket_env["AUTOREPAY_HEALTH_PORT"]), lines=lines)
    assert httpx.get(base + "/healthz").json() == {"ready": True}
    metrics = httpx.get(base + "/metrics")
    names = {family.name for family in text_string_to_metric_families(metrics.text)}
    assert {"autorepay_commands", "autorepay_jobs_waiting", "autorepay_drift"} <= names
    for path in ("/slack/events", "/", "/metricsx"):  # nothing else on that port
        assert httpx.get(base + path).status_code == 404
    assert httpx.post(base + "/slack/events", content=b"{}").status_code == 404
    assert not socket_port_is_open(int(socket_env["PORT"]))  # no HTTP mode server
    code, _ = end(process, lines)
    assert code == 0
    assert "Traceback" not in lines.text


def test_healthz_says_503_while_the_connection_to_slack_is_down(
        socket_env: dict[str, str], slack: FakeSlack, tmp_path: Path,
        started: list[tuple[subprocess.Popen[str], Lines]]) -> None:
    """Without its WebSocket the bot gets no command and no click: not healthy."""
    process, lines = start(socket_env, tmp_path, started)
    port = int(socket_env["AUTOREPAY_HEALTH_PORT"])
    wait_ready(process, port, lines=lines)
    healthz = f"http://127.0.0.1:{port}/healthz"
    slack.fail("apps.connections.open", "internal_error", times=1000)
    slack.drop_sockets()
    lines.wait_for("connection attempt 1 failed")
    assert httpx.get(healthz).status_code == 503
    slack.heal()
    slack.wait_for(lambda: slack.connected, timeout=30)
    lines.wait_for("connected to Slack (Socket Mode) after")
    assert httpx.get(healthz).json() == {"ready": True}
    code, _ = end(process, lines)
    assert code == 0


def test_a_health_port_in_use_is_a_start_up_problem(socket_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = bot_process([], {**socket_env, "AUTOREPAY_HEALTH_PORT": str(port)},
                              tmp_path)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "Traceback" not in err
    problems = [line for line in err.splitlines() if line.startswith("autorepay: config error")]
    assert problems == [f"autorepay: config error: AUTOREPAY_HEALTH_PORT={port}: the port is "
                        "already in use on 127.0.0.1 (is the bot running already?)"]


def test_http_mode_serves_metrics_on_its_port_and_ignores_the_health_port(
        socket_env: dict[str, str], tmp_path: Path,
        started: list[tuple[subprocess.Popen[str], Lines]]) -> None:
    env = {name: value for name, value in socket_env.items() if name != "SLACK_APP_TOKEN"}
    process, lines = start(env, tmp_path, started)
    wait_ready(process, int(env["PORT"]), lines=lines)
    metrics = httpx.get(f"http://127.0.0.1:{env['PORT']}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "autorepay_pending_requests" in {
        family.name for family in text_string_to_metric_families(metrics.text)}
    [said] = lines.wait_for("AUTOREPAY_HEALTH_PORT")
    assert "not used in HTTP mode" in said
    assert not socket_port_is_open(int(env["AUTOREPAY_HEALTH_PORT"]))


def socket_port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
