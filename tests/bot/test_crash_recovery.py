"""Killing the real process (SIGKILL) at each step of an approved change.

Whatever step the crash hits, the restarted bot finishes the same decision, says in
the thread that it resumed, and never records a second approval.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from bot.database import Database
from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, OKX_ENV, OPS, SIGNING_SECRET
from tests.bot.process import bot_env, bot_process, free_port, stop, wait_ready
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.okx_server import SET_AUTO_REPAY, FakeOkx
from tests.fakes.slack_requests import block_action, form_payload, signed_headers, slash_command
from tests.fakes.slack_server import FakeSlack

pytestmark = ON_BOTH_BACKENDS


class Bot:
    """One `python -m bot` process, restartable on the same database."""

    def __init__(self, slack: FakeSlack, okx: FakeOkx, cwd: Path,
                 database: Path | str) -> None:
        self.slack, self.okx, self.cwd, self.database = slack, okx, cwd, database
        self.port = free_port()
        # On PostgreSQL a restarted process can't tell its own dead leases from another
        # replica's live ones: they run out first (the shortest lease allowed, here).
        where = {"AUTOREPAY_DB": str(database)} if isinstance(database, Path) else \
            {"AUTOREPAY_DATABASE_URL": database, "AUTOREPAY_LEASE_SECONDS": "5"}
        self.process = bot_process([], {**bot_env(slack, okx, self.port), **where}, cwd)
        wait_ready(self.process, self.port)

    def post(self, body: str) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.port}/slack/events", content=body,
                          headers=signed_headers(SIGNING_SECRET, body), timeout=10)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=10)

    def restart(self) -> Bot:
        return Bot(self.slack, self.okx, self.cwd, self.database)


@pytest.fixture
def first_bot(slack: FakeSlack, okx: FakeOkx, tmp_path: Path,
              database: Path | str) -> Iterator[Bot]:
    bot = Bot(slack, okx, tmp_path, database)
    yield bot
    if bot.process.poll() is None:
        bot.kill()


def request_and_click(bot: Bot) -> tuple[str, httpx.Response]:
    slack = bot.slack
    bot.post(slash_command("on", ALICE, OPS, slack.response_url("cmd")))
    call = slack.wait_for(lambda: [c for c in slack.called("chat.postMessage")
                                   if c.args.get("channel") == APPROVALS])[0]
    slack.wait_for(lambda: slack.responses_to("cmd"))  # request stored and posted
    ts = str(call.answer["ts"])
    click = block_action(BOB, APPROVALS, ts, call.args, APPROVE, slack.response_url("click"))
    return ts, bot.post(form_payload(click))


def rows(database: Path | str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """What another process stored, read with a connection of the test's own."""
    url = (Database.sqlite(database) if isinstance(database, Path)
           else Database.parse(database)).url
    engine = sa.create_engine(url.set(drivername=url.drivername.split("+")[0]
                                      if url.get_backend_name() == "sqlite"
                                      else url.drivername), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def audit(database: Path | str) -> list[str]:
    return [row[0] for row in rows(database, "SELECT event FROM audit ORDER BY seq")]


def is_thread_reply(args: dict[str, Any]) -> bool:
    return "thread_ts" in args


def okx_write_seen(slack: FakeSlack, okx: FakeOkx) -> None:
    okx.wait_for(lambda: [r for r in okx.requests if r.path == SET_AUTO_REPAY])


KILL_POINTS: dict[str, tuple[Callable[[FakeSlack, FakeOkx], None],
                             Callable[[FakeSlack, FakeOkx], Any], str, int]] = {
    # name: (arrange the stall, wait until the process got there,
    #        status stored when killed, OKX writes in the end)
    "while Slack hangs at the click": (  # the OKX job waits for no Slack call
        lambda slack, okx: (slack.stall("chat.update"),
                            slack.stall("chat.postMessage", is_thread_reply)),
        lambda slack, okx: slack.wait_for(lambda: slack.stalled("chat.update")
                                          and slack.stalled("chat.postMessage")),
        "done", 1),
    "during a slow OKX call": (
        lambda slack, okx: okx.fail_next("slow", seconds=30, path=SET_AUTO_REPAY),
        okx_write_seen, "approved", 2),
    "before the thread reply": (
        lambda slack, okx: slack.stall("chat.postMessage", is_thread_reply),
        lambda slack, okx: slack.wait_for(lambda: slack.stalled("chat.postMessage")),
        "done", 1),
}


def stored_status(database: Path | str) -> list[tuple[Any, ...]]:
    return rows(database, "SELECT status, announced FROM requests")


def until(check: Callable[[], object]) -> None:
    """The bot records each step within milliseconds; kill it once `check()` sees it."""
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)  # another process writes it; nothing to wait on but the file


def until_stored(database: Path | str, status: str) -> None:
    until(lambda: [row[0] for row in stored_status(database)] == [status])


def until_job_done(database: Path | str, kind: str) -> None:
    until(lambda: rows(database, "SELECT count(*) FROM jobs WHERE kind = :kind AND"
                                 " done_at IS NOT NULL", kind=kind)[0][0])


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_restart_finishes_the_same_decision(
        point: str, first_bot: Bot, slack: FakeSlack, okx: FakeOkx, tmp_path: Path) -> None:
    arrange, reached, status_at_kill, writes = KILL_POINTS[point]
    arrange(slack, okx)
    ts, ack = request_and_click(first_bot)
    assert ack.status_code == 200  # Slack got its ack before anything slow happened
    reached(slack, okx)
    until_stored(first_bot.database, status_at_kill)
    first_bot.kill()
    assert stored_status(first_bot.database) == [(status_at_kill, 0)]

    slack.unstall()
    second = first_bot.restart()
    try:
        thread = slack.wait_for(lambda: slack.thread(ts), timeout=15)
        assert "Resumed after an interruption" in thread[0]["text"]
        assert "now *ON*" in thread[0]["text"]
    finally:
        stop(second.process)
    assert okx.accounts[OKX_ENV["OKX_API_KEY"]].auto_repay is True
    assert len([r for r in okx.requests if r.path == SET_AUTO_REPAY]) == writes
    events = audit(first_bot.database)
    assert events.count("approved") == 1  # one decision, executed (again) at most as itself
    assert events.count("okx_done") == 1
    assert len(slack.thread(ts)) == 1


def test_crash_before_the_approval_message_was_posted(
        first_bot: Bot, slack: FakeSlack, okx: FakeOkx, tmp_path: Path) -> None:
    slack.stall("chat.postMessage")
    first_bot.post(slash_command("on", ALICE, OPS, slack.response_url("cmd")))
    slack.wait_for(lambda: slack.stalled("chat.postMessage"))
    first_bot.kill()
    slack.unstall()
    second = first_bot.restart()
    try:
        posted = slack.wait_for(lambda: slack.posted(APPROVALS))
        assert "asks to switch auto repay *ON*" in posted[0]["text"]
        told = slack.wait_for(lambda: slack.dms(ALICE))
        assert "waiting for approval" in told[0]["text"]
    finally:
        stop(second.process)
    assert audit(first_bot.database).count("requested") == 1


def test_crash_after_slack_posted_but_before_the_bot_recorded_it_posts_once(
        first_bot: Bot, slack: FakeSlack, okx: FakeOkx, tmp_path: Path) -> None:
    slack.lose_answer("chat.postMessage")  # posted; the answer never reaches the bot
    slack.stall("conversations.history")  # and its retry is looking for it when killed
    first_bot.post(slash_command("on", ALICE, OPS, slack.response_url("cmd")))
    slack.wait_for(lambda: slack.stalled("conversations.history"))
    first_bot.kill()
    slack.unstall()
    second = first_bot.restart()
    try:
        told = slack.wait_for(lambda: [dm for dm in slack.dms()
                                       if "waiting for approval" in dm["text"]])
        assert told[0]["channel"] == ALICE
        assert len(slack.history[APPROVALS]) == 1  # found the first, posted no second
        ts = slack.history[APPROVALS][0]["ts"]
        click = block_action(BOB, APPROVALS, ts, slack.posted(APPROVALS)[0], APPROVE,
                             slack.response_url("click"))
        assert second.post(form_payload(click)).status_code == 200
        assert "now *ON*" in slack.wait_for(lambda: slack.thread(ts))[0]["text"]
    finally:
        stop(second.process)
    assert okx.codes() == ["0"]


def test_crash_while_telling_the_requester_repeats_only_that_note(
        first_bot: Bot, slack: FakeSlack, okx: FakeOkx, tmp_path: Path) -> None:
    def the_note(args: dict[str, Any]) -> bool:  # the DM to the requester
        return args.get("channel") == ALICE and "Done" in str(args.get("text"))

    slack.stall("chat.postMessage", the_note)
    ts, _ = request_and_click(first_bot)
    slack.wait_for(lambda: [c for c in slack.stalled("chat.postMessage") if the_note(c.args)])
    until_job_done(first_bot.database, "thread_reply")
    first_bot.kill()
    slack.unstall()
    second = first_bot.restart()
    try:
        told = slack.wait_for(lambda: [dm for dm in slack.dms() if "Done" in dm["text"]])
        assert told[0]["channel"] == ALICE
    finally:
        stop(second.process)
    assert len(slack.thread(ts)) == 1  # the thread reply was made once, before the crash
    assert okx.codes() == ["0"]
    assert stored_status(first_bot.database) == [("done", 1)]
