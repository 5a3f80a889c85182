"""PostgreSQL going away and coming back, on a real server (tests/pg.py): unreachable at
start is a config error (exit 2, the password never shown); lost while running, the bot
says 503 on /healthz, answers commands and clicks with "try again" and changes nothing,
then carries on by itself when the server is back, without a restart of the bot.

The server of the `postgres` fixture is shared by every test of this xdist worker (one
test at a time): a test that stops it starts it again before it ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import httpx
import pytest

from handlers.blocks import APPROVE, DATABASE_DOWN
from tests.bot.conftest import (
    APPROVALS,
    BOB,
    Harness,
    Reply,
    demo,
    everything_said,
    live,
)
from tests.bot.process import (
    Lines,
    bot_env,
    bot_process,
    end,
    free_port,
    refused_port,
    wait_ready,
)
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_requests import block_action, find_action, form_payload
from tests.fakes.slack_server import FakeSlack
from tests.pg import PostgresServer

# The harness's bot on a fresh PostgreSQL database of its own (`database` is its URL).
ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
URL_VARIABLE = "AUTOREPAY_DATABASE_URL"
TRY_AGAIN = DATABASE_DOWN.text
# How long the bot may take to notice either way: it pings every 2 s, a ping that can't
# connect fails at once (refused), and one that hangs gives up after 5 s.
NOTICE_SECONDS = 8.0
T = TypeVar("T")


def until(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)  # another thread's (or process's) state; nothing to wait on
    return result


def password_forms(password: str) -> list[str]:
    return [password, quote(password, safe=""), quote_plus(password), quote(password)]


def assert_no_password(password: str, *texts: str) -> None:
    for text in texts:
        for form in password_forms(password):
            assert form not in text, f"the database password ({form!r}) was shown"


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.contextmanager
def server_back_at_the_end(postgres: PostgresServer) -> Iterator[None]:
    """Whatever the test does with the shared server, it runs again afterwards."""
    try:
        yield
    finally:
        if not postgres.running:
            postgres.start_server()


def healthz(url: str) -> int:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code
    except httpx.TransportError:
        return 0


_clicks = itertools.count(1)


def click_now(bot: Harness, user: str, action_id: str, index: int = -1) -> Reply:
    """A click on a posted approval message, sent at once. (Harness.click first reads
    the bot's store to see that the message is recorded, which an outage forbids.)"""
    ts, message = bot.approval_message(index)
    name = f"outage-click{next(_clicks)}"
    payload = block_action(user, APPROVALS, ts, message, action_id,
                           bot.slack.response_url(name))
    return Reply(bot, name, bot.post(form_payload(payload)))


def request_id_of(message: dict[str, Any]) -> str:
    return str(find_action(message.get("blocks", []), APPROVE)["value"])


def log_lines(caplog: pytest.LogCaptureFixture, text: str, logger: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if text in r.getMessage() and r.name.startswith(logger)]


# --- 1. unreachable at start -----------------------------------------------------------
DISTINCTIVE = "Unr3achable@pw/with%odd:chars#?+ zz"


def start_fails(env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = bot_process([], env, cwd)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


def config_errors(err: str) -> list[str]:
    prefix = "autorepay: config error: "
    return [line.removeprefix(prefix) for line in err.splitlines() if line.startswith(prefix)]


def test_postgresql_refusing_connections_at_start_is_exit_2_without_the_password(
        slack: FakeSlack, okx: FakeOkx, tmp_path: Path) -> None:
    with refused_port() as port:
        url = f"postgresql://autorepay:{quote(DISTINCTIVE, safe='')}@127.0.0.1:{port}/autorepay"
        env = {**bot_env(slack, okx, free_port()), URL_VARIABLE: url}
        started = time.monotonic()
        code, out, err = start_fails(env, tmp_path)
    assert code == 2, err
    assert time.monotonic() - started < 30  # refused is known at once: no long wait
    assert "Traceback" not in out + err, err
    assert_no_password(DISTINCTIVE, out, err)
    [problem] = config_errors(err)
    assert problem.startswith(f"{URL_VARIABLE}=postgresql://autorepay:***@127.0.0.1:{port}"
                              "/autorepay cannot be used: "), problem
    assert slack.called("auth.test") == []  # judged before anything reaches out to Slack
    assert not list(tmp_path.iterdir())  # no SQLite file made instead


@pytest.mark.parametrize("wrong", ["password", "database"])
def test_real_server_refusing_the_login_is_exit_2_without_the_password(
        wrong: str, slack: FakeSlack, okx: FakeOkx, postgres: PostgresServer,
        postgres_url: str, tmp_path: Path) -> None:
    if wrong == "password":
        url = with_password(postgres_url, DISTINCTIVE)
        secret, why = DISTINCTIVE, "password authentication failed"
    else:  # the right password, a database that doesn't exist
        url = with_database(postgres_url, "no_such_database")
        secret, why = postgres.password, "does not exist"
    env = {**bot_env(slack, okx, free_port()), URL_VARIABLE: url}
    code, out, err = start_fails(env, tmp_path)
    assert code == 2, err
    assert "Traceback" not in out + err, err
    assert_no_password(secret, out, err)
    assert_no_password(postgres.password, out, err)
    [problem] = config_errors(err)
    assert problem.startswith(f"{URL_VARIABLE}=postgresql://autorepay:***@127.0.0.1:"), problem
    assert why in problem, problem


# --- 2. lost while running, in process ----------------------------------------------------
@ON_POSTGRESQL
def test_database_lost_then_back_try_again_then_everything_works(
        bot: Harness, postgres: PostgresServer, database: str,
        caplog: pytest.LogCaptureFixture) -> None:
    assert bot.server is not None
    url = bot.server.url
    assert healthz(url) == 200
    # A pending request for demo, its approval message posted: the click target.
    assert "waiting for approval" in bot.command("demo on").followup()
    demo_ts, demo_message = bot.approval_message()
    demo_request = request_id_of(demo_message)
    posted_before = len(bot.slack.posted(APPROVALS))
    updates_before = len(bot.slack.called("chat.update"))

    with server_back_at_the_end(postgres):
        postgres.stop_server()
        lost_at = time.monotonic()
        until(lambda: healthz(url) == 503, NOTICE_SECONDS, "/healthz 503 after the loss")
        noticed = time.monotonic() - lost_at

        # A command: acknowledged at once as always, then "try again"; nothing done.
        reply = bot.command("on")
        assert reply.response.status_code == 200
        assert reply.followup() == TRY_AGAIN
        # A click on the pending request: acknowledged, then "try again"; nothing done.
        click = click_now(bot, BOB, APPROVE)
        assert click.response.status_code == 200
        assert click.followup() == TRY_AGAIN

        assert healthz(url) == 503  # still out
        assert bot.okx.codes() == []  # no OKX write for either
        assert live(bot.okx).auto_repay is False and demo(bot.okx).auto_repay is False
        assert len(bot.slack.posted(APPROVALS)) == posted_before
        assert len(bot.slack.called("chat.update")) == updates_before

        postgres.start_server()
        back_at = time.monotonic()
        until(lambda: healthz(url) == 200, NOTICE_SECONDS, "/healthz 200 after the return")
        recovered = time.monotonic() - back_at

    # Nothing of the outage's command or click was recorded.
    assert bot.store.get(demo_request).status.value == "pending"
    events = bot.store.audit_events()
    assert [e.event for e in events].count("requested") == 1
    assert not [e for e in events if e.event.startswith(("approved", "okx"))]

    # The same command now works end to end, without a restart of the bot.
    assert "waiting for approval" in bot.command("on").followup()
    live_ts, live_message = bot.approval_message()
    assert live_ts != demo_ts and "*live* (LIVE)" in live_message["text"]
    # The same click as well: decision → OKX write → thread reply.
    bot.click(BOB, APPROVE, index=0)  # the demo request's message
    demo_thread = bot.slack.wait_for(lambda: bot.slack.thread(demo_ts))
    assert "Auto repay is now *ON* on *demo* (DEMO)" in demo_thread[0]["text"]
    assert demo(bot.okx).auto_repay is True and live(bot.okx).auto_repay is False
    bot.click(BOB, APPROVE)  # and the new live request
    assert "Auto repay is now *ON* on *live* (LIVE)" in bot.thread_replies()[0]["text"]
    assert live(bot.okx).auto_repay is True
    assert bot.okx.codes() == ["0", "0"]  # one write each, nothing more
    assert bot.store.get(demo_request).status.value == "done"

    # The log: one line for the loss, one for the return; no traceback, no password.
    lost = log_lines(caplog, "the database can't be reached", "bot.database")
    back = log_lines(caplog, "the database answers again", "bot.database")
    assert len(lost) == 1 and len(back) == 1, (lost, back)
    assert [r.levelname for r in caplog.records if r.getMessage() == lost[0]] == ["ERROR"]
    assert "503" in lost[0] and "try again" in lost[0]
    assert log_lines(caplog, "command not done: the database can't be reached")
    assert log_lines(caplog, "click not recorded: the database can't be reached")
    assert "Traceback" not in caplog.text, caplog.text
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert_no_password(postgres.password, caplog.text, everything_said(bot.slack))
    assert noticed < NOTICE_SECONDS and recovered < NOTICE_SECONDS


@ON_POSTGRESQL
def test_worker_backs_off_with_one_line_per_failure_during_an_outage(
        bot: Harness, postgres: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    """While the job table can't be read, the worker tries again less and less often
    (1, 2, 4 … s), one WARNING line each try, without a traceback."""
    assert bot.server is not None
    with server_back_at_the_end(postgres):
        postgres.stop_server()
        until(lambda: len(log_lines(caplog, "trying again in 2 s", "bot.worker")) >= 1,
              15.0, "two failed claims")
        postgres.start_server()
        until(lambda: healthz(bot.server.url) == 200 if bot.server else False,
              NOTICE_SECONDS, "/healthz 200")
    tries = [r for r in caplog.records
             if "the job table could not be read" in r.getMessage()]
    assert all(r.levelname == "WARNING" and not r.exc_info for r in tries)
    pauses = [float(m[1]) for r in tries
              if (m := re.search(r"trying again in (\d+(?:\.\d+)?) s", r.getMessage()))]
    assert pauses[:2] == [1.0, 2.0], pauses  # (then 4, 8, 8 …: see the test after next)
    assert len(pauses) == len(tries) <= 3, pauses  # one line per try, no more
    assert "Traceback" not in caplog.text
    assert_no_password(postgres.password, caplog.text)
    assert "waiting for approval" in bot.command("on").followup()


# --- 3. connections killed under the bot ----------------------------------------------------
@ON_POSTGRESQL
def test_connections_killed_under_the_bot_the_next_command_and_click_still_work(
        bot: Harness, postgres: PostgresServer, database: str,
        caplog: pytest.LogCaptureFixture) -> None:
    assert "waiting for approval" in bot.command("demo on").followup()
    assert postgres.kill_connections(database) > 0  # the pool held some
    reply = bot.command("on")
    assert "waiting for approval" in reply.followup()
    assert TRY_AGAIN not in str(bot.slack.responses)
    assert postgres.kill_connections(database) > 0
    bot.click(BOB, APPROVE)  # the live request
    assert "Auto repay is now *ON* on *live* (LIVE)" in bot.thread_replies()[0]["text"]
    assert postgres.kill_connections(database) > 0
    bot.click(BOB, APPROVE, index=0)  # the demo request
    demo_ts, _ = bot.approval_message(0)
    bot.slack.wait_for(lambda: bot.slack.thread(demo_ts))
    assert demo(bot.okx).auto_repay is True and live(bot.okx).auto_repay is True
    assert bot.okx.codes() == ["0", "0"]
    assert bot.server is not None
    until(lambda: healthz(bot.server.url) == 200 if bot.server else False, NOTICE_SECONDS,
          "/healthz 200")
    # (A statement running at the moment of a kill fails, and its job or loop tries
    # again, one line; nothing that was merely pooled causes any failure.)
    assert not log_lines(caplog, "command not done") and not log_lines(caplog, "click not")
    assert "Traceback" not in caplog.text
    assert_no_password(postgres.password, caplog.text)


# --- 2b. lost while running, the real process ------------------------------------------------
@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    running: list[subprocess.Popen[str]] = []
    yield running
    for process in running:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def test_real_process_reports_the_loss_and_the_return_once_each(
        slack: FakeSlack, okx: FakeOkx, postgres: PostgresServer, postgres_url: str,
        tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    env = {**bot_env(slack, okx, port), URL_VARIABLE: postgres_url,
           "AUTOREPAY_LOG_LEVEL": "DEBUG"}
    process = bot_process([], env, tmp_path)
    processes.append(process)
    output = Lines(process)
    wait_ready(process, port, 30.0, output)
    url = f"http://127.0.0.1:{port}"
    with server_back_at_the_end(postgres):
        postgres.stop_server()
        until(lambda: healthz(url) == 503, NOTICE_SECONDS, "/healthz 503")
        output.wait_for("the database can't be reached")
        postgres.start_server()
        until(lambda: healthz(url) == 200, NOTICE_SECONDS, "/healthz 200")
        output.wait_for("the database answers again")
    assert process.poll() is None  # it never stopped
    code, out = end(process, output)
    assert code == 0
    text = output.text + out
    assert len([line for line in output.lines if "the database can't be reached" in line]) == 1
    assert len([line for line in output.lines if "the database answers again" in line]) == 1
    assert "Traceback" not in text, text
    assert_no_password(postgres.password, text)
    assert not list(tmp_path.glob("*.db"))  # no SQLite file on the side


# --- 2c. back after a long outage: no waiting out the worker's backoff ----------------------
@ON_POSTGRESQL
def test_after_a_long_outage_a_new_request_is_posted_without_waiting_out_the_backoff(
        bot: Harness, postgres: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    """Once the database answers again (/healthz 200), a new request's approval message
    goes out at once, as it always does (tens of milliseconds), even when the worker had
    backed off to its longest pause (8 s) during the outage: the request's new job wakes
    it. The command's reply must not say that Slack is slow when Slack is fine."""
    assert bot.server is not None
    url = bot.server.url
    with server_back_at_the_end(postgres):
        postgres.stop_server()
        until(lambda: log_lines(caplog, "trying again in 8 s", "bot.worker"), 20.0,
              "the worker's longest pause")
        postgres.start_server()
        until(lambda: healthz(url) == 200, NOTICE_SECONDS, "/healthz 200")
    asked = time.monotonic()
    reply = bot.command("on")
    bot.slack.wait_for(lambda: bot.slack.posted(APPROVALS), timeout=15)
    took = time.monotonic() - asked
    text = reply.followup()
    assert took < 3.0, f"the approval message took {took:.1f} s after the database was back"
    assert "waiting for approval" in text, text
    assert bot.slack.called("chat.postMessage")[0].answer["ok"]  # Slack took it at once
