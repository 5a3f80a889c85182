"""`python -m bot` as an operator meets it (SPEC §6): bind first, then "ready"; every
start-up problem on a line of its own with exit 2 and no traceback; healthz 503 while
starting and draining; a signal at any moment ends it with exit 0."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.store import Store
from tests.bot.conftest import ALICE, OKX_ENV, OPS, SIGNING_SECRET
from tests.bot.process import Lines, bot_env, bot_process, free_port, refused_port, stop, wait_ready
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_requests import signed_headers, slash_command
from tests.fakes.slack_server import FakeSlack

ROOT = Path(__file__).resolve().parents[2]


def exits(args: list[str], env: dict[str, str], cwd: Path, **popen: object
          ) -> tuple[int, list[str]]:
    process = bot_process(args, env, cwd, **popen)
    _, err = process.communicate(timeout=30)
    assert "Traceback" not in err, err
    return process.returncode, err.strip().splitlines()


def config_lines(lines: list[str]) -> list[str]:
    """The problem lines; log lines may come before them once the checks reach the network."""
    prefix = "autorepay: config error: "
    problems = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
    assert problems, lines
    return problems


@pytest.fixture
def env(slack: FakeSlack, okx: FakeOkx) -> dict[str, str]:
    return bot_env(slack, okx, free_port())


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


# --- port and bind -------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["99999", "-5", "65536", "0"])
def test_port_flag_out_of_range_is_a_config_error(flag: str, env: dict[str, str],
                                                   tmp_path: Path) -> None:
    code, lines = exits(["--port", flag], env, tmp_path)
    assert code == 2
    assert config_lines(lines) == [f"--port {flag} must be a whole number from 1 to 65535"]


def test_binds_first_then_logs_the_real_address_then_ready(
        env: dict[str, str], tmp_path: Path, running: list[subprocess.Popen[str]]) -> None:
    process = bot_process(["--port", env["PORT"]], {**env, "PORT": "1"}, tmp_path)
    running.append(process)
    output = Lines(process)
    ready = output.wait_for("ready mode=http")
    listening = output.wait_for("listening on http://127.0.0.1:")[0]
    port = int(re.search(r"127\.0\.0\.1:(\d+)", listening).group(1))  # type: ignore[union-attr]
    assert port == int(env["PORT"])
    assert output.lines.index(listening) < output.lines.index(ready[0])
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    output.finish()
    assert output.wait_for("shutting down") and output.wait_for("stopped")
    # no noise: Bolt's token warning, httpx's line per request, tracebacks
    for noise in ("will be unused", "HTTP Request:", "Traceback", "okx okx"):
        assert noise not in output.text


def test_a_port_in_use_is_a_config_error(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = exits([], {**env, "PORT": str(port)}, tmp_path)
    assert code == 2
    assert config_lines(lines) == [
        f"PORT={port}: the port is already in use on 127.0.0.1 (is the bot running already?)"]


def test_a_host_that_does_not_resolve_is_a_config_error(env: dict[str, str],
                                                        tmp_path: Path) -> None:
    code, lines = exits([], {**env, "AUTOREPAY_HOST": "no-such-host.invalid"}, tmp_path)
    assert code == 2
    [line] = config_lines(lines)
    assert line.startswith("AUTOREPAY_HOST='no-such-host.invalid' does not resolve")


# --- every problem in one run ----------------------------------------------------------
def example_env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def test_placeholders_from_env_example_and_missing_credentials_all_reported(
        tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    code, lines = exits([], {}, tmp_path)
    assert code == 2
    problems = "\n".join(config_lines(lines))
    placeholders = [name for name, value in example_env().items()
                    if value.endswith("...") or re.fullmatch(r"[CUS]0\d+(,[CUS]0\d+)*", value)]
    assert {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "AUTOREPAY_APPROVAL_CHANNEL",
            "AUTOREPAY_REQUESTERS", "AUTOREPAY_APPROVERS"} <= set(placeholders)
    for name in placeholders:
        assert f"{name}" in problems and "example value" in problems, name
    assert "OKX_API_KEY" in problems  # credentials are reported in the same run


def test_http_flag_without_signing_secret_hides_nothing(env: dict[str, str],
                                                        tmp_path: Path) -> None:
    broken = {**env, "SLACK_SIGNING_SECRET": "", "SLACK_APP_TOKEN": "xapp-1-real",
              "AUTOREPAY_APPROVAL_CHANNEL": "#approvals"}
    for name in OKX_ENV:
        broken.pop(name)
    code, lines = exits(["--http"], broken, tmp_path)
    assert code == 2
    problems = config_lines(lines)
    assert any(p.startswith("SLACK_SIGNING_SECRET is not set") for p in problems)
    assert any("'#approvals' is not a channel ID" in p for p in problems)
    assert any("OKX_API_KEY" in p for p in problems)
    assert not any("SLACK_APP_TOKEN" in p for p in problems)  # --http: not checked


def test_an_impossible_quorum_is_a_config_error(env: dict[str, str], tmp_path: Path) -> None:
    code, lines = exits([], {**env, "AUTOREPAY_APPROVALS_REQUIRED": "3"}, tmp_path)
    assert code == 2
    [line] = config_lines(lines)
    assert line.startswith("AUTOREPAY_APPROVALS_REQUIRED=3 can never be reached")


def read_only(path: Path, on: bool) -> None:
    """Root may write any file whatever its mode: make it immutable instead."""
    if os.geteuid() == 0:
        result = subprocess.run(["chattr", "+i" if on else "-i", str(path)],
                                capture_output=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot make a file read-only for root here: {result.stderr!r}")
    else:
        path.chmod((0o444 if path.is_file() else 0o555) if on else 0o755)


async def make_database(database: Path) -> None:
    store = await Store.open(database)
    await store.aclose()


def test_a_read_only_database_is_a_config_error(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    database = folder / "autorepay.db"
    asyncio.run(make_database(database))
    read_only(database, True)
    read_only(folder, True)
    try:
        code, lines = exits([], {**env, "AUTOREPAY_DB": str(database)}, tmp_path)
    finally:
        read_only(folder, False)
        read_only(database, False)
    assert code == 2
    [line] = config_lines(lines)
    assert line.startswith(f"AUTOREPAY_DB='{database}' cannot be")
    with sqlite3.connect(database) as db:  # and nothing was changed
        assert db.execute("SELECT count(*) FROM audit").fetchone() == (0,)


# --- what only Slack and OKX can tell ----------------------------------------------------
def test_a_bot_token_slack_rejects_is_a_config_error(env: dict[str, str],
                                                     tmp_path: Path) -> None:
    code, lines = exits([], {**env, "SLACK_BOT_TOKEN": "xoxb-revoked"}, tmp_path)
    assert code == 2
    assert config_lines(lines) == [
        "SLACK_BOT_TOKEN was rejected by Slack (invalid_auth): copy the token again from "
        "the app's settings at api.slack.com/apps"]


def test_socket_mode_app_token_slack_rejects_is_a_config_error(
        env: dict[str, str], tmp_path: Path) -> None:
    code, lines = exits([], {**env, "SLACK_APP_TOKEN": "xapp-revoked"}, tmp_path)
    assert code == 2
    [line] = config_lines(lines)
    assert line.startswith("SLACK_APP_TOKEN was rejected by Slack (invalid_auth)")


@pytest.mark.parametrize("mode", ["http", "socket"])
def test_slack_unreachable_retries_one_line_each_and_stops_on_a_signal(
        mode: str, env: dict[str, str], tmp_path: Path,
        running: list[subprocess.Popen[str]]) -> None:
    with refused_port() as port:
        unreachable = {**env, "SLACK_API_URL": f"http://127.0.0.1:{port}/api/"}
        if mode == "socket":
            unreachable["SLACK_APP_TOKEN"] = "xapp-test-app-token"
        process = bot_process([], unreachable, tmp_path)
        running.append(process)
        output = Lines(process)
        output.wait_for("could not reach Slack", count=2)
    if mode == "http":  # bound, but not ready
        assert httpx.get(f"http://127.0.0.1:{env['PORT']}/healthz").status_code == 503
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=5) == 0
    output.finish()
    attempts = [line for line in output.lines if "could not reach Slack" in line]
    assert all("WARNING" in line for line in attempts)
    assert "Traceback" not in output.text and "ready" not in output.text


def test_healthz_is_503_until_slack_answers_then_200(
        env: dict[str, str], tmp_path: Path, slack: FakeSlack,
        running: list[subprocess.Popen[str]]) -> None:
    slack.fail("auth.test", "service_unavailable", times=3, status=503)
    process = bot_process([], env, tmp_path)
    running.append(process)
    output = Lines(process)
    output.wait_for("could not reach Slack to check SLACK_BOT_TOKEN")
    assert httpx.get(f"http://127.0.0.1:{env['PORT']}/healthz").status_code == 503
    wait_ready(process, int(env["PORT"]))
    stop(process)


def test_one_refused_okx_key_makes_only_that_account_unavailable(
        env: dict[str, str], tmp_path: Path, running: list[subprocess.Popen[str]]) -> None:
    process = bot_process([], {**env, "OKX_DEMO_API_SECRET": "WRONG-SECRET"}, tmp_path)
    running.append(process)
    output = Lines(process)
    wait_ready(process, int(env["PORT"]))
    [refused] = output.wait_for("OKX refused the demo account's API key")
    assert "ERROR" in refused and "50113" in refused
    output.wait_for("OKX live account ok")
    stop(process)
    assert "WRONG-SECRET" not in output.text


def test_two_account_names_for_one_okx_account_are_pointed_out(
        env: dict[str, str], tmp_path: Path, running: list[subprocess.Popen[str]]) -> None:
    twin = {"OKX_TWIN_API_KEY": env["OKX_API_KEY"], "OKX_TWIN_API_SECRET": env["OKX_API_SECRET"],
            "OKX_TWIN_API_PASSPHRASE": env["OKX_API_PASSPHRASE"]}
    process = bot_process([], {**env, **twin, "AUTOREPAY_ACCOUNTS": "live, demo:demo, twin"},
                          tmp_path)
    running.append(process)
    output = Lines(process)
    wait_ready(process, int(env["PORT"]))
    [line] = output.wait_for("are the same OKX account")
    assert "WARNING" in line and "live" in line and "twin" in line
    stop(process)
    assert "demo" not in line  # a different uid: not named


def test_no_usable_okx_key_at_all_is_a_config_error(env: dict[str, str],
                                                    tmp_path: Path) -> None:
    wrong = {**env, "OKX_DEMO_API_SECRET": "WRONG-1", "OKX_API_SECRET": "WRONG-2"}
    code, lines = exits([], wrong, tmp_path)
    assert code == 2
    [line] = config_lines(lines)
    assert line.startswith("no OKX account can be used")


# --- stopping ------------------------------------------------------------------------------
def test_healthz_is_503_while_draining_and_work_in_flight_finishes(
        env: dict[str, str], tmp_path: Path, slack: FakeSlack, okx: FakeOkx,
        running: list[subprocess.Popen[str]]) -> None:
    process = bot_process([], env, tmp_path)
    running.append(process)
    port = int(env["PORT"])
    wait_ready(process, port)
    okx.latency = 2.0  # the status read after the ack is slow: work in flight
    body = slash_command("status", ALICE, OPS, slack.response_url("s"))
    response = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body,
                          headers=signed_headers(SIGNING_SECRET, body))
    assert response.status_code == 200
    okx.wait_for(lambda: len(okx.requests) >= 3)  # the start-up reads, then this one
    process.send_signal(signal.SIGTERM)
    health = slack.wait_for(lambda: _health(port) == 503 or None, timeout=5)
    assert health
    assert process.wait(timeout=15) == 0
    assert "OFF" in str(slack.responses_to("s"))  # the answer went out before exit


def _health(port: int) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
    except httpx.TransportError:
        return None


def test_stalled_connections_beyond_the_file_limit_cannot_stop_a_command(
        env: dict[str, str], tmp_path: Path, slack: FakeSlack,
        running: list[subprocess.Popen[str]]) -> None:
    def usual_file_limit() -> None:  # the common default of `ulimit -n`
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    process = bot_process([], {**env, "AUTOREPAY_MAX_CONNECTIONS": "10000"}, tmp_path,
                          preexec_fn=usual_file_limit)
    running.append(process)
    port = int(env["PORT"])
    wait_ready(process, port)
    stalled = []
    try:
        for _ in range(3000):  # far more than the bot may open
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n")
            stalled.append(sock)
        body = slash_command("status", ALICE, OPS, slack.response_url("s"))
        response = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body,
                              headers=signed_headers(SIGNING_SECRET, body), timeout=3.0)
        assert response.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3.0).status_code == 200
    finally:
        for sock in stalled:
            sock.close()
    _, err = stop(process)
    assert "Too many open files" not in err and "Traceback" not in err
    assert "connection limit reached" in err or "file descriptors ran out" in err


# --- found when the bot was attacked again ---------------------------------------------
def test_a_second_process_on_the_same_database_refuses_to_start(
        env: dict[str, str], tmp_path: Path, running: list[subprocess.Popen[str]]) -> None:
    first = bot_process([], env, tmp_path)
    running.append(first)
    wait_ready(first, int(env["PORT"]))
    code, lines = exits([], {**env, "PORT": str(free_port())}, tmp_path)
    assert code == 2
    [line] = config_lines(lines)
    assert f"another bot process (pid {first.pid})" in line
    first.send_signal(signal.SIGKILL)  # the kernel releases the lock, even now
    first.wait(timeout=10)
    second = bot_process([], env, tmp_path)
    running.append(second)
    wait_ready(second, int(env["PORT"]))
    stop(second)


@pytest.mark.parametrize("dotenv, expected", [
    (b"PORT=\xff\xfe3150\n", ".env is not UTF-8 text"),
    (b"AUTOREPAY_LOG_LEVEL=INFO\nPORT\n", ".env line 2: PORT has no value"),
    (b"AUTOREPAY_LOG_LEVEL=INFO\n'unterminated\n", ".env line 2 is not NAME=value"),
], ids=["not-utf8", "name-without-value", "unparseable"])
def test_a_broken_dotenv_file_is_a_config_error(dotenv: bytes, expected: str,
                                                env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(dotenv)
    code, lines = exits([], env, tmp_path)
    assert code == 2
    [line] = config_lines(lines)
    assert line.startswith(expected)


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example", "é" * 70])
def test_a_host_name_that_is_not_a_name_is_a_config_error(host: str, env: dict[str, str],
                                                          tmp_path: Path) -> None:
    code, lines = exits([], {**env, "AUTOREPAY_HOST": host}, tmp_path)
    assert code == 2
    [line] = config_lines(lines)
    assert line.startswith(f"AUTOREPAY_HOST={host!r} does not resolve")


def test_port_in_use_and_a_bad_database_are_reported_together(env: dict[str, str],
                                                              tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = exits([], {**env, "PORT": str(port), "AUTOREPAY_DB": str(tmp_path)},
                            tmp_path)
    assert code == 2
    problems = config_lines(lines)
    assert len(problems) == 2
    assert any("already in use" in p for p in problems)
    assert any(p.startswith("AUTOREPAY_DB=") for p in problems)


def handles_sigterm(pid: int) -> bool:
    """True once the process catches SIGTERM: the bot installs its handlers (both
    signals) as its very first step, before any slow import."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines()
                      if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_right_after_launch_exits_0(sig: int, env: dict[str, str],
                                             tmp_path: Path) -> None:
    """The earliest moment the bot's own code runs: before it has imported anything
    slow, read its settings or bound its port."""
    for _ in range(3):
        process = bot_process([], env, tmp_path)
        while not handles_sigterm(process.pid) and process.poll() is None:
            pass  # polling /proc: the moment is too short to wait on anything else
        process.send_signal(sig)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert "Traceback" not in err


def test_debug_logging_keeps_response_urls_out(env: dict[str, str], tmp_path: Path,
                                               slack: FakeSlack,
                                               running: list[subprocess.Popen[str]]) -> None:
    process = bot_process([], {**env, "AUTOREPAY_LOG_LEVEL": "DEBUG"}, tmp_path)
    running.append(process)
    port = int(env["PORT"])
    wait_ready(process, port)
    body = slash_command("status", ALICE, OPS, slack.response_url("secret-hook"))
    httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body,
               headers=signed_headers(SIGNING_SECRET, body))
    slack.wait_for(lambda: slack.responses_to("secret-hook"))
    _, err = stop(process)
    assert "DEBUG" in err and "secret-hook" not in err and "1337.42" not in err
    # Seen: Bolt's app logger took the root's DEBUG and logged every Web API body.
    assert [line for line in err.splitlines() if " DEBUG slack_" in line] == []
