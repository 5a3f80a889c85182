"""SPEC §9, the drift watch, through the real bot: auto repay switched on the loopback
OKX server behind the bot's back is alerted once in the approval channel; the bot's own
changes never are. Rounds are run by calling the watch's `check_all` on the bot's loop,
its pause between reads recorded instead of waited out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from bot.accounts import Account
from bot.app import Runtime, okx_clients
from bot.drift_watch import MIN_GAP_SECONDS, DriftWatch
from bot.readings import Drift, Source
from bot.service import AutoRepay
from bot.startup import check_accounts
from bot.store import Store
from handlers.announce import DRIFT_TYPE
from handlers.blocks import APPROVE
from okx import RateLimiter
from tests.bot.conftest import APPROVALS, BOB, Harness, demo, live
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.okx_server import CONFIG, SET_AUTO_REPAY

LIVE, DEMO = Account.LIVE, Account.DEMO
ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def watch_round(bot: Harness, owner: str = "test-watch", interval: float = 300.0
                ) -> list[float]:
    """One round of a drift watch on the bot's loop; the pauses it asked for."""
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    assert bot.server is not None
    watch = DriftWatch(bot.runtime.service, interval, owner, clock=bot.clock, sleep=pause)
    bot.server.call(watch.check_all())
    return pauses


async def no_pause(seconds: float) -> None:
    return None


def alerts(bot: Harness) -> list[dict[str, Any]]:
    return [m for m in bot.slack.posted(APPROVALS) if "changed outside the bot" in m["text"]]


def drifts(bot: Harness, account: Account = LIVE) -> list[Drift]:
    return bot.store.drifts([account], 10)  # type: ignore[no-any-return]


def alerted(bot: Harness, count: int) -> list[dict[str, Any]]:
    """The alerts, once `count` are posted and recorded."""
    posted = bot.slack.wait_for(lambda: len(found := alerts(bot)) >= count and found)
    bot.until(lambda: all(d.alert_ts for d in drifts(bot)))
    return posted  # type: ignore[no-any-return]


@pytest.fixture
def replica(bot: Harness) -> Iterator[AutoRepay]:
    """Another replica's service: its own store handle on the same database, and OKX
    clients of its own (its reads don't queue behind this replica's writes)."""
    assert bot.server is not None
    runtime: Runtime = bot.runtime
    service = runtime.service
    store = bot.server.call(Store.open(runtime.settings.database))
    clients, _ = okx_clients(runtime.settings, bot.environ)
    yield AutoRepay(store=store, policy=service.policy, accounts=service.accounts,
                    clients=clients, missing={}, rules=service.rules, ttl=900.0,
                    approval_channel=service.approval_channel, clock=service.clock)
    for client in clients.values():
        bot.server.call(client.aclose())
    bot.server.call(store.aclose())


def replica_round(bot: Harness, replica: AutoRepay, owner: str = "replica-2") -> None:
    assert bot.server is not None
    watch = DriftWatch(replica, 300.0, owner, clock=bot.clock, sleep=no_pause)
    bot.server.call(watch.check_all())


@ON_BOTH_BACKENDS
def test_a_flip_made_on_okx_is_alerted_once(bot: Harness) -> None:
    assert watch_round(bot) == [150.0]  # two accounts, paced over the interval
    assert drifts(bot) == [] and alerts(bot) == []  # the first read is the baseline
    live(bot.okx).auto_repay = True  # someone switches it in OKX's web UI
    watch_round(bot)
    [alert] = alerted(bot, 1)
    assert "Auto repay on *live* (LIVE, uid 448812345678) was changed outside the bot: " \
           "now *ON*, was *OFF* at <!date^" in alert["text"]
    assert alert["metadata"]["event_type"] == DRIFT_TYPE
    [drift] = drifts(bot)
    assert alert["metadata"]["event_payload"] == {"drift_id": drift.id}
    assert (drift.auto_repay, drift.was, drift.uid) == (True, False, "448812345678")
    [post] = [c for c in bot.slack.called("chat.postMessage") if c.args is alert]
    assert drift.alert_ts == post.answer["ts"]  # recorded: App Home and history link it
    watch_round(bot)  # nothing new: nothing said
    assert len(drifts(bot)) == 1 and len(alerts(bot)) == 1
    [event] = [e for e in bot.store.audit_events() if e.event == "drift"]
    assert event.detail["account"] == "live" and event.detail["now"] is True
    assert event.detail["was"] is False and event.request_id == f"drift-{drift.id}"
    assert drifts(bot, DEMO) == []


@ON_BOTH_BACKENDS
def test_two_flips_give_two_alerts(bot: Harness) -> None:
    watch_round(bot)
    demo(bot.okx).auto_repay = True
    watch_round(bot)
    demo(bot.okx).auto_repay = False
    watch_round(bot)
    first, second = alerted(bot, 2)
    assert "[DEMO] Auto repay on *demo* (DEMO, uid 900000000001)" in first["text"]
    assert "now *ON*, was *OFF*" in first["text"] and "now *OFF*, was *ON*" in second["text"]
    assert len(drifts(bot, DEMO)) == 2 and drifts(bot, LIVE) == []


@ON_BOTH_BACKENDS
def test_a_change_through_the_bot_is_not_alerted(bot: Harness) -> None:
    watch_round(bot)
    bot.command("on").followup()
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    watch_round(bot)
    assert drifts(bot) == [] and alerts(bot) == []
    reading = bot.store.readings([LIVE])[LIVE]
    assert reading.auto_repay is True and reading.source is Source.READ


@ON_BOTH_BACKENDS
def test_a_change_through_the_bot_is_not_alerted_on_another_name_of_its_account(
        harness: Harness) -> None:
    """Two names on one OKX key: the bot's change to one is the other's too."""
    alias = Account("alias")
    harness.environ.update({f"OKX_ALIAS_API_{part}": harness.environ[f"OKX_API_{part}"]
                            for part in ("KEY", "SECRET", "PASSPHRASE")})
    bot = harness.start(accounts=(LIVE, alias))
    watch_round(bot)
    bot.command("on live").followup()
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    watch_round(bot)
    assert drifts(bot, alias) == [] and alerts(bot) == []
    live(bot.okx).auto_repay = False  # and a real change outside is still seen on both
    watch_round(bot)
    assert len(alerted(bot, 2)) == 2


@ON_BOTH_BACKENDS
def test_a_round_while_the_bots_change_is_in_flight_alerts_nothing(
        bot: Harness, replica: AutoRepay) -> None:
    watch_round(bot, owner="replica-2")
    before = bot.store.reading_version(LIVE)
    bot.command("on").followup()
    bot.okx.fail_next("slow", seconds=1.5, path=SET_AUTO_REPAY)  # the write hangs a while
    bot.click(BOB, APPROVE)
    bot.okx.wait_for(lambda: SET_AUTO_REPAY in str(bot.okx.summary()))
    live(bot.okx).auto_repay = True  # OKX has switched it; its answer is on the way
    replica_round(bot, replica)  # reads ON, the bot knew OFF: but the change is its own
    assert bot.store.applying(LIVE) is not None, "the round ran after the write"
    assert bot.store.reading_version(LIVE) == before  # nothing recorded for live
    assert bot.store.reading_version(DEMO) == before + 1  # (the round did run)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    watch_round(bot, owner="replica-2")
    replica_round(bot, replica)
    assert drifts(bot) == [] and alerts(bot) == []


@ON_BOTH_BACKENDS
def test_a_read_that_fails_alerts_nothing_and_the_next_round_works(
        bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    watch_round(bot)
    live(bot.okx).auto_repay = True
    bot.okx.fail_next("50113", times=2, path=CONFIG)  # OKX refuses both reads
    caplog.clear()
    watch_round(bot)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(" code=")[0] for r in warnings] == [
        "account unavailable account=live", "account unavailable account=demo"]
    assert drifts(bot) == [] and bot.store.reading_version(LIVE) == 1
    watch_round(bot)
    alerted(bot, 1)
    assert len(drifts(bot)) == 1


@ON_BOTH_BACKENDS
def test_a_write_whose_outcome_is_unknown_then_a_read_alerts_nothing(bot: Harness) -> None:
    watch_round(bot)
    bot.command("on").followup()
    bot.okx.fail_next("50001", times=50, path=SET_AUTO_REPAY)
    bot.click(BOB, APPROVE)
    assert "outcome is unknown" in bot.thread_replies()[0]["text"]
    assert LIVE not in bot.store.readings([LIVE])  # unknown: the next read is a baseline
    live(bot.okx).auto_repay = True  # it went through after all
    watch_round(bot)
    assert drifts(bot) == [] and alerts(bot) == []
    assert bot.store.readings([LIVE])[LIVE].auto_repay is True


@ON_BOTH_BACKENDS
def test_history_shows_drifts_among_finished_requests(bot: Harness) -> None:
    watch_round(bot)
    bot.command("demo on").followup()
    bot.click(BOB, APPROVE)
    bot.thread_replies()
    bot.clock.now += 60
    live(bot.okx).auto_repay = True
    watch_round(bot)
    alerted(bot, 1)
    text = bot.command("history", user=BOB).followup()
    lines = text.splitlines()
    assert lines[0] == "The last 2 changes, newest first:"
    assert "changed outside the bot" in lines[1] and "*live* (LIVE" in lines[1]
    assert "asked *ON* on *demo* (DEMO)" in lines[2]
    assert "changed outside the bot" not in bot.command("history demo", user=BOB).followup()


@ON_BOTH_BACKENDS
def test_a_change_made_while_the_bot_was_down_is_alerted_at_start(bot: Harness) -> None:
    assert bot.server is not None
    assert bot.server.call(check_accounts(bot.runtime)) == []  # the baseline
    assert drifts(bot) == []
    live(bot.okx).auto_repay = True
    bot.server.call(check_accounts(bot.runtime))
    [alert] = alerted(bot, 1)
    assert "now *ON*, was *OFF*" in alert["text"]


def test_with_the_watch_switched_off_nothing_is_alerted(harness: Harness) -> None:
    """AUTOREPAY_DRIFT_CHECK_SECONDS=0: start-up and App Home still read the accounts,
    and what they find is taken as it is."""
    bot = harness.start(drift_check_seconds=0)
    assert bot.server is not None
    bot.server.call(check_accounts(bot.runtime))
    live(bot.okx).auto_repay = True
    bot.server.call(check_accounts(bot.runtime))
    assert bot.store.readings([LIVE])[LIVE].auto_repay is True
    assert drifts(bot) == [] and alerts(bot) == []


def test_start_up_reads_of_accounts_on_one_uid_are_not_refused(harness: Harness) -> None:
    """Before its first answer no client knows its uid: the start-up reads go at most 5
    per window altogether. (OKX's window is shortened to 0.3 s on both sides here.)"""
    desks = [Account(f"desk-{n}") for n in range(7)]
    harness.environ.clear()
    for account in desks:
        key, secret, passphrase = account.env_names
        harness.environ |= {key: f"{account.name}-key", secret: f"SECRET-{account.name}",
                            passphrase: f"PASS-{account.name}"}
        harness.okx.add_account(api_key=f"{account.name}-key", secret=f"SECRET-{account.name}",
                                passphrase=f"PASS-{account.name}", uid="770000000007")
    harness.okx.rate_limit = (5, 0.3)
    bot = harness.start(accounts=tuple(desks))
    assert bot.server is not None
    pace = RateLimiter(max_calls=5, period=0.3)
    assert bot.server.call(check_accounts(bot.runtime, pace=pace)) == []
    assert bot.okx.codes(CONFIG) == ["0"] * 7  # none refused (50011), none read twice
    assert set(bot.store.readings(desks)) == set(desks)  # every baseline recorded


@ON_BOTH_BACKENDS
def test_an_alert_whose_answer_was_lost_is_not_posted_twice(bot: Harness) -> None:
    watch_round(bot)
    bot.slack.lose_answer("chat.postMessage")  # posted, but the bot can't know
    live(bot.okx).auto_repay = True
    watch_round(bot)
    bot.until(lambda: all(d.alert_ts for d in drifts(bot)))
    assert len(alerts(bot)) == 1
    assert bot.slack.called("conversations.history")  # looked before posting again


@ON_BOTH_BACKENDS
def test_an_alert_slack_refuses_for_good_ends_with_a_warning(
        bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    watch_round(bot)
    bot.slack.fail("chat.postMessage", "not_in_channel")
    live(bot.okx).auto_repay = True
    watch_round(bot)
    bot.until(lambda: "drift alert not posted" in caplog.text)
    bot.until(lambda: not bot.server.call(  # type: ignore[union-attr]
        bot.runtime.service.store.jobs.open_jobs()))
    assert alerts(bot) == [] and drifts(bot)[0].alert_ts == ""
    assert "invite the bot to the approval channel" in caplog.text


@ON_BOTH_BACKENDS
def test_the_watch_runs_with_the_bot_unless_switched_off(harness: Harness) -> None:
    bot = harness.start()
    assert bot.runtime.drift is not None  # its first round is an interval away
    assert bot.okx.summary() == []  # so no read yet
    bot.stop()
    off = harness.start(drift_check_seconds=0)
    assert off.runtime.drift is None


def test_reads_are_spread_over_the_interval_but_never_closer_than_okxs_window() -> None:
    def gap(accounts: int, interval: float) -> float:
        service = SimpleNamespace(watched=[Account(f"desk-{n}") for n in range(accounts)])
        return DriftWatch(service, interval, "me").gap  # type: ignore[arg-type]

    assert gap(20, 300.0) == 15.0 and gap(1, 300.0) == 300.0 and gap(0, 300.0) == 300.0
    assert gap(20, 5.0) == gap(3, 5.0) == MIN_GAP_SECONDS == 2.0  # one slot of OKX's 5 / 2 s


@ON_POSTGRESQL
def test_two_replicas_watching_alert_once(bot: Harness, replica: AutoRepay) -> None:
    assert bot.server is not None
    watch_round(bot, owner="replica-1")

    async def both_watch() -> None:
        mine = DriftWatch(bot.runtime.service, 300.0, "replica-1", clock=bot.clock,
                          sleep=no_pause)
        theirs = DriftWatch(replica, 300.0, "replica-2", clock=bot.clock, sleep=no_pause)
        await asyncio.gather(mine.check_all(), theirs.check_all())

    live(bot.okx).auto_repay = True
    reads = len(bot.okx.requests)
    bot.server.call(both_watch())
    assert len(bot.okx.requests) - reads == 2  # one replica held the turn and read both
    alerted(bot, 1)
    live(bot.okx).auto_repay = False  # and even reads at the very same moment…

    async def both_read() -> None:
        await asyncio.gather(bot.runtime.service.observe(LIVE), replica.observe(LIVE))

    bot.server.call(both_read())
    alerted(bot, 2)
    assert len(drifts(bot)) == 2 and len(alerts(bot)) == 2  # …find the change once

