"""SPEC §9, App Home: opening the Home tab (a signed `app_home_opened` event) publishes,
for that person, the accounts they may see with their state and its age, what waits for
approval and what happened last, with links. Outsiders get a short note. Readings are
refreshed within OKX's limits, once per account however many people open Home."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.accounts import Account
from bot.approvals import ChangeRequest, Status
from bot.config import Access
from bot.home import AccountLine, Dashboard
from bot.readings import Drift, Reading, Source
from handlers.blocks import APPROVE, DATABASE_DOWN, message_link
from handlers.home import dashboard
from tests.bot.conftest import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    DAVE,
    MALLORY,
    SIGNING_SECRET,
    Harness,
    demo,
    live,
)
from tests.bot.test_database_outage import ON_POSTGRESQL, server_back_at_the_end
from tests.bot.test_socket_mode import acked, envelope, socket_bot  # noqa: F401
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.okx_server import CONFIG
from tests.fakes.slack_requests import (
    JSON,
    app_home_opened,
    event_callback,
    signed_headers,
    url_verification,
)
from tests.fakes.slack_server import FakeSlack, home_view_fits
from tests.pg import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
LIVE_LINE = re.compile(r"\*live\* \(LIVE\): auto repay \*(ON|OFF)\* · OKX uid 448812345678 · "
                       r"read (\d+) s ago")
DEMO_LINE = re.compile(r"\*demo\* \(DEMO\): auto repay \*(ON|OFF)\* · OKX uid 900000000001 · "
                       r"read (\d+) s ago")


# --- acting as Slack, reading what the bot published ------------------------------------
def post_event(bot: Harness, body: str, *, secret: str = SIGNING_SECRET) -> httpx.Response:
    return bot.http.post(bot.events_url, content=body,
                         headers=signed_headers(secret, body, content_type=JSON))


def open_home(bot: Harness, user: str, tab: str = "home") -> httpx.Response:
    response = post_event(bot, event_callback(app_home_opened(user, tab)))
    assert response.status_code == 200
    return response


def home_of(bot: Harness, user: str, count: int = 1) -> str:
    """The text of the `count`-th view published for `user` (waiting for it)."""
    views = bot.slack.wait_for(lambda: len(v := bot.slack.published(user)) >= count and v)
    return view_text(views[count - 1])


def view_text(view: dict[str, Any]) -> str:
    texts = []
    for block in view["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [element["text"] for element in block.get("elements", [])]
    return "\n".join(texts)


def config_reads(bot: Harness) -> int:
    return len([r for r in bot.okx.requests if r.path.split("?")[0] == CONFIG])


# --- who sees what -------------------------------------------------------------------------
@ON_BOTH_BACKENDS
def test_an_approver_sees_every_account_with_its_state_and_age(bot: Harness) -> None:
    live(bot.okx).auto_repay = True
    open_home(bot, BOB)
    text = home_of(bot, BOB)
    live_line, demo_line = LIVE_LINE.search(text), DEMO_LINE.search(text)
    assert live_line and live_line.group(1) == "ON" and int(live_line.group(2)) < 5
    assert demo_line and demo_line.group(1) == "OFF"
    assert "Nothing is waiting for approval." in text
    assert config_reads(bot) == 2  # never read before: read now, once each
    assert bot.slack.published(ALICE) == []  # published for the one who opened it


def test_an_outsider_gets_a_short_note_and_no_account_data(bot: Harness) -> None:
    open_home(bot, MALLORY)
    [view] = bot.slack.wait_for(lambda: bot.slack.published(MALLORY))
    text = view_text(view)
    assert "can't request or approve auto repay changes" in text
    assert "live" not in text and "demo" not in text and "uid" not in text
    assert len(view["blocks"]) == 1
    assert bot.okx.requests == []


def test_a_requester_sees_only_the_accounts_they_may_use(harness: Harness) -> None:
    erin = "U0ERIN001"
    bot = harness.start(per_account={"demo": Access(requesters=(erin,), approvers=(BOB,))})
    open_home(bot, erin)
    text = home_of(bot, erin)
    assert DEMO_LINE.search(text) and "*live*" not in text
    open_home(bot, ALICE)  # a requester of live only (demo has lists of its own)
    text = home_of(bot, ALICE)
    assert LIVE_LINE.search(text) and "*demo*" not in text


def test_a_user_group_member_sees_the_accounts_of_the_group(bot: Harness) -> None:
    open_home(bot, DAVE)  # a requester through S0TRADERS
    text = home_of(bot, DAVE)
    assert LIVE_LINE.search(text) and DEMO_LINE.search(text)


def test_a_group_lookup_that_fails_gives_a_short_note(bot: Harness) -> None:
    bot.slack.fail("usergroups.users.list", "fatal_error", times=5)  # (every lookup)
    open_home(bot, DAVE)
    text = home_of(bot, DAVE)
    assert "couldn't check your membership" in text and "can't request" not in text
    assert "*live*" not in text and bot.okx.requests == []


# --- reading OKX: fresh enough, once per account, never holding the view -------------------
def test_a_fresh_reading_is_shown_without_reading_okx_again(bot: Harness) -> None:
    open_home(bot, BOB)
    home_of(bot, BOB)
    bot.clock.now += 20
    open_home(bot, BOB)
    line = LIVE_LINE.search(home_of(bot, BOB, 2))
    assert line and 20 <= int(line.group(2)) < 25
    assert config_reads(bot) == 2


def test_a_stale_reading_is_read_once_per_account_however_many_open_home(bot: Harness
                                                                         ) -> None:
    open_home(bot, BOB)
    home_of(bot, BOB)
    bot.clock.now += 31
    live(bot.okx).auto_repay = True  # (a drift: found by this read, alerted once)
    bot.okx.fail_next("slow", times=2, seconds=0.5, path=CONFIG)  # reads overlap the opens
    people = [BOB, CAROL, ALICE, DAVE]
    with ThreadPoolExecutor(max_workers=len(people)) as pool:
        list(pool.map(lambda user: open_home(bot, user), people))
    for user in people:
        line = LIVE_LINE.search(home_of(bot, user, 2 if user == BOB else 1))
        assert line and line.group(1) == "ON" and int(line.group(2)) < 5
    assert config_reads(bot) == 4  # 2 at first, then 2 for everyone


def test_a_read_okx_refuses_still_publishes_saying_so(bot: Harness) -> None:
    live(bot.okx).ip_allowed = False  # OKX refuses the live key from now on
    open_home(bot, BOB)
    text = home_of(bot, BOB)
    assert re.search(r"\*live\* \(LIVE\): auto repay \*unknown\*: it couldn't be read just "
                     r"now: .*IP", text)
    assert DEMO_LINE.search(text)


def test_a_failed_read_is_not_tried_again_by_everyone_who_opens_home(bot: Harness) -> None:
    live(bot.okx).ip_allowed = False
    open_home(bot, BOB)
    home_of(bot, BOB)
    open_home(bot, CAROL)  # moments later: the failure still serves (OKX is spared)
    assert "*live* (LIVE): auto repay *unknown*" in home_of(bot, CAROL)
    assert config_reads(bot) == 2
    bot.clock.now += 6  # past RETRY_AFTER: tried again
    open_home(bot, CAROL)
    home_of(bot, CAROL, 2)
    assert config_reads(bot) == 3


def test_an_old_reading_that_cant_be_refreshed_is_shown_as_old(bot: Harness) -> None:
    open_home(bot, BOB)
    home_of(bot, BOB)
    bot.clock.now += 120
    live(bot.okx).ip_allowed = False
    open_home(bot, BOB)
    text = home_of(bot, BOB, 2)
    assert re.search(r"\*live\* \(LIVE\): auto repay \*OFF\* · OKX uid 448812345678 · read "
                     r"2 min ago · :warning: couldn't be refreshed just now: .*IP", text)


def test_a_hung_read_does_not_hold_the_view_and_goes_on_for_the_next(bot: Harness) -> None:
    bot.runtime.service.overview_seconds = 0.3
    bot.okx.fail_next("slow", times=2, seconds=1.0, path=CONFIG)
    open_home(bot, BOB)
    text = home_of(bot, BOB)
    assert text.count("auto repay *unknown*: it couldn't be read just now: OKX did not "
                      "answer within 0.3 s.") == 2
    accounts = (Account.LIVE, Account.DEMO)
    bot.until(lambda: len(bot.store.readings(accounts)) == 2)  # the reads went on
    open_home(bot, BOB)
    text = home_of(bot, BOB, 2)
    assert LIVE_LINE.search(text) and DEMO_LINE.search(text)
    assert config_reads(bot) == 2  # no second read: the first one's answer serves


def test_the_messages_tab_publishes_nothing(bot: Harness) -> None:
    open_home(bot, BOB, tab="messages")
    open_home(bot, CAROL)
    home_of(bot, CAROL)
    assert bot.slack.published(BOB) == [] and config_reads(bot) == 2


# --- what waits and what happened, with links ----------------------------------------------
@ON_BOTH_BACKENDS
def test_pending_requests_and_last_changes_link_to_their_messages(bot: Harness) -> None:
    bot.command("on live").followup()
    done_ts, _ = bot.approval_message()
    bot.click(BOB, APPROVE)
    bot.thread_replies()
    bot.command("on demo -- testing the desk").followup()
    pending_ts, _ = bot.slack.wait_for(lambda: len(bot.slack.posted(APPROVALS)) == 2
                                       and bot.approval_message())
    open_home(bot, CAROL)
    text = home_of(bot, CAROL)
    waiting, _, recent = text.partition("The last 10 changes")
    assert "Waiting for approval (1)" in waiting
    assert f"<{message_link(APPROVALS, pending_ts)}|open it>" in waiting
    assert "asks *ON* on *demo* (DEMO)" in waiting and "testing the desk" in waiting
    assert "asked *ON* on *live* (LIVE): :white_check_mark: Done" in recent
    assert f"<{message_link(APPROVALS, done_ts)}|open it>" in recent


@ON_BOTH_BACKENDS
def test_a_drift_appears_with_a_link_to_its_alert(bot: Harness) -> None:
    open_home(bot, BOB)
    home_of(bot, BOB)  # the baseline
    demo(bot.okx).auto_repay = True  # someone flips it in OKX's web UI
    bot.clock.now += 31
    open_home(bot, BOB)  # this read finds it
    home_of(bot, BOB, 2)
    [alert] = bot.slack.wait_for(lambda: bot.slack.posted(APPROVALS))
    ts = bot.slack.called("chat.postMessage")[-1].answer["ts"]
    bot.until(lambda: bot.store.drifts([Account.DEMO], 1)[0].alert_ts == ts)
    open_home(bot, BOB)
    text = home_of(bot, BOB, 3)
    assert "Auto repay on *demo* (DEMO) (OKX uid 900000000001) was changed outside the " \
           "bot: now *ON*, was *OFF*" in text
    assert f"<{message_link(APPROVALS, ts)}|open the alert>" in text
    assert "changed outside the bot" in alert["text"]


@ON_POSTGRESQL
def test_with_the_database_out_home_says_to_try_again(bot: Harness,
                                                     postgres: PostgresServer) -> None:
    with server_back_at_the_end(postgres):
        postgres.stop_server()
        open_home(bot, BOB)
        assert home_of(bot, BOB) == DATABASE_DOWN.text
    assert bot.okx.requests == []


# --- the Events API endpoint ---------------------------------------------------------------
def test_the_event_is_acknowledged_before_the_view_is_published(bot: Harness) -> None:
    bot.slack.hold("views.publish")
    open_home(bot, BOB)  # answered 200 while the publish waits (a 3 s ack can't hang on it)
    bot.slack.wait_for(lambda: bot.slack.held)
    assert bot.slack.published(BOB) == []
    bot.slack.release()
    assert LIVE_LINE.search(home_of(bot, BOB))


def test_url_verification_answers_the_challenge_only_when_signed(bot: Harness) -> None:
    body = url_verification("challenge-4711")
    response = post_event(bot, body)
    assert response.status_code == 200 and "challenge-4711" in response.text
    assert post_event(bot, body, secret="not-the-signing-secret").status_code == 401
    unsigned = bot.http.post(bot.events_url, content=body, headers={"Content-Type": JSON})
    assert unsigned.status_code == 401 and "challenge-4711" not in unsigned.text
    assert post_event(bot, json.dumps({"type": "url_verification"})).status_code == 400


@pytest.mark.parametrize("event", [
    {"type": "app_home_opened", "tab": "home"},
    {"type": "app_home_opened", "user": 5, "tab": "home"},
    {"type": "app_home_opened", "user": {"id": BOB}, "tab": "home"},
    {"type": "app_home_opened", "user": "U0BOB0001\nINFO forged line", "tab": "home"},
    {"type": "app_home_opened", "user": BOB, "tab": ["home"]},
    {"type": "app_home_opened", "user": BOB, "tab": "home", "channel": 7},
    {"user": BOB, "tab": "home"},
    "app_home_opened",
], ids=["no-user", "user-number", "user-object", "user-newline", "tab-list", "channel-number",
        "no-type", "event-string"])
def test_a_malformed_event_is_refused_and_changes_nothing(
        bot: Harness, event: Any, caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({**json.loads(event_callback({})), "event": event})
    assert post_event(bot, body).status_code == 400
    open_home(bot, CAROL)  # (a good one after it: the bad ones were not queued)
    home_of(bot, CAROL)
    assert [c.args["user_id"] for c in bot.slack.called("views.publish")] == [CAROL]
    assert config_reads(bot) == 2  # CAROL's view's, nothing for the refused ones
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.usefixtures("socket_bot")
def test_socket_mode_publishes_home_too(slack: FakeSlack) -> None:
    slack.send_envelope(envelope("env-h", "events_api",
                                 json.loads(event_callback(app_home_opened(BOB)))))
    acked(slack, "env-h")
    [view] = slack.wait_for(lambda: slack.published(BOB))
    assert LIVE_LINE.search(view_text(view)) and DEMO_LINE.search(view_text(view))


# --- Slack's limits, and the manifest ------------------------------------------------------
def test_long_lists_are_cut_within_slacks_limits() -> None:
    now = 1_700_000_000.0
    accounts = [Account(f"desk-{i}") for i in range(3000)]
    lines = [AccountLine(a, Reading(a, "1" * 12, True, now - 3, Source.READ))
             for a in accounts]
    pending = [ChangeRequest(f"ar-{i:06d}", ALICE, accounts[0], True, Status.PENDING, now,
                             now + 900, "C0OPS0001", APPROVALS, "1.2", reason="x" * 500)
               for i in range(300)]
    recent: list[ChangeRequest | Drift] = [
        Drift(i, accounts[1], "1" * 12, True, False, now - 99, now) for i in range(10)]
    view = dashboard(Dashboard(lines, pending, recent, True, now), 1, APPROVALS).to_dict()
    assert home_view_fits(view)
    text = view_text(view)
    assert re.search(r"… and \d+ more not shown", text)
    assert "Waiting for approval (300)" in text and "desk-2999" not in text
    assert text.count("changed outside the bot") == 10
    assert "Some accounts may be missing" in text


def test_the_manifest_enables_home_and_its_event() -> None:
    manifest = (ROOT / "app.yaml").read_text()
    assert "home_tab_enabled: true" in manifest
    events = manifest.split("event_subscriptions:", 1)[1].split("interactivity:", 1)[0]
    assert "# request_url: https://" in events and re.search(r"bot_events:\n\s+- app_home_opened",
                                                              events)
    assert "socket_mode_enabled: true" in manifest


def test_the_stand_in_refuses_views_past_slacks_limits() -> None:
    """(So that the tests above could fail: a view over the limits is not published.)"""
    assert home_view_fits({"type": "home", "blocks": [{"type": "divider"}] * 100})
    assert not home_view_fits({"type": "home", "blocks": [{"type": "divider"}] * 101})
    long_text = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert not home_view_fits({"type": "home", "blocks": [long_text]})


def test_a_publish_without_an_answer_is_one_warning_and_the_next_open_works(
        bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A connection reset on views.publish: nothing is retried (the view would be stale
    by then), nothing crashes; opening the tab again publishes."""
    bot.slack.drop("views.publish")
    open_home(bot, BOB)
    bot.until(lambda: "home not published" in caplog.text)
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
    open_home(bot, BOB)
    assert "*live*" in home_of(bot, BOB)
