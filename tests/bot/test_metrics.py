"""GET /metrics (SPEC §9): Prometheus' own parser reads it, every series is there from
the start, and the counters move with what the bot does; label values stay bounded."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import MAX_TOKENS, OTHER, Metrics
from handlers.blocks import APPROVE
from okx.client import CONFIG_PATH, SET_AUTO_REPAY_PATH
from tests.bot.conftest import BOB, MALLORY, Harness, live
from tests.conftest import ON_BOTH_BACKENDS

SERIES = ("autorepay_commands_total", "autorepay_decisions_total", "autorepay_changes_total",
          "autorepay_okx_requests_total", "autorepay_okx_request_seconds",
          "autorepay_slack_errors_total", "autorepay_pending_requests",
          "autorepay_jobs_waiting", "autorepay_drift_total")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(bot: Harness) -> tuple[set[str], Samples]:
    """(the metric families, every sample by name and labels), as Prometheus reads them."""
    assert bot.server is not None
    response = bot.http.get(bot.server.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.text))
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in families for s in family.samples}
    return {family.name for family in families}, samples


def value(bot: Harness, name: str, **labels: str) -> float | None:
    return scrape(bot)[1].get((name, frozenset(labels.items())))


def test_every_series_is_there_from_the_start(bot: Harness) -> None:
    families, samples = scrape(bot)
    for name in SERIES:  # (the parser names a counter's family without "_total")
        assert name.removesuffix("_total") in families, name
    at_zero = {("autorepay_commands_total", (("action", "on"), ("outcome", "requested"))),
               ("autorepay_decisions_total", (("verdict", "approved"),)),
               ("autorepay_changes_total", (("account", "live"), ("result", "done"))),
               ("autorepay_drift_total", (("account", "demo"),)),
               ("autorepay_pending_requests", (("account", "live"),)),
               ("autorepay_jobs_waiting", ())}
    for name, labels in at_zero:
        assert samples[(name, frozenset(labels))] == 0.0, name


def test_a_command_and_an_approved_change_are_counted(bot: Harness) -> None:
    assert "waiting for approval" in bot.command("on").followup()
    bot.click(BOB, APPROVE)
    assert "now *ON*" in bot.thread_replies()[0]["text"]
    assert live(bot.okx).auto_repay is True
    assert value(bot, "autorepay_commands_total", action="on", outcome="requested") == 1
    assert value(bot, "autorepay_decisions_total", verdict="approved") == 1
    assert value(bot, "autorepay_changes_total", account="live", result="done") == 1
    assert value(bot, "autorepay_changes_total", account="live", result="failed") == 0
    writes = value(bot, "autorepay_okx_requests_total", endpoint=SET_AUTO_REPAY_PATH, code="0")
    assert writes == 1
    assert value(bot, "autorepay_okx_request_seconds_count", endpoint=SET_AUTO_REPAY_PATH) == 1


def test_a_refusal_is_counted_for_the_command_and_the_click(bot: Harness) -> None:
    assert "waiting for approval" in bot.command("on").followup()
    bot.command("on", user=MALLORY).followup()
    bot.click(MALLORY, APPROVE).followup()
    assert value(bot, "autorepay_commands_total", action="on", outcome="refused") == 1
    assert value(bot, "autorepay_decisions_total", verdict="refused") == 1
    assert value(bot, "autorepay_decisions_total", verdict="approved") == 0
    said = str(scrape(bot)[1])
    assert MALLORY not in said and BOB not in said  # never a user as a label


def test_a_failed_slack_call_is_counted_by_method_and_error(bot: Harness) -> None:
    bot.slack.fail("chat.postMessage", "channel_not_found")
    assert "could not be put up for approval" in bot.command("on").followup()
    assert value(bot, "autorepay_slack_errors_total", method="chat.postMessage",
                 error="channel_not_found") == 1


def test_a_slack_call_without_an_answer_is_counted_by_its_kind(bot: Harness) -> None:
    bot.slack.drop("chat.postMessage")
    assert "waiting for approval" in bot.command("on").followup()
    errors = {labels: v for (name, labels), v in scrape(bot)[1].items()
              if name == "autorepay_slack_errors_total"}
    assert errors == {frozenset({("method", "chat.postMessage"),
                                 ("error", "server_disconnected_error")}): 1}


def test_an_okx_answer_is_counted_with_its_code(bot: Harness) -> None:
    bot.okx.fail_next("50113", path=CONFIG_PATH)  # OKX: invalid signature
    bot.command("status live").followup()
    assert value(bot, "autorepay_okx_requests_total", endpoint=CONFIG_PATH, code="50113") == 1
    assert value(bot, "autorepay_commands_total", action="status", outcome="unavailable") == 1
    bot.command("status live").followup()
    assert value(bot, "autorepay_okx_requests_total", endpoint=CONFIG_PATH, code="0") == 1


@ON_BOTH_BACKENDS
def test_the_gauges_are_read_from_the_database(bot: Harness) -> None:
    bot.slack.hold("chat.postMessage")  # the approval message's job stays open
    bot.command("on")
    bot.until(lambda: bot.slack.held)
    assert value(bot, "autorepay_pending_requests", account="live") == 1
    assert value(bot, "autorepay_pending_requests", account="demo") == 0
    assert value(bot, "autorepay_jobs_waiting") == 1
    bot.slack.release()
    bot.until(lambda: value(bot, "autorepay_jobs_waiting") == 0)
    assert value(bot, "autorepay_pending_requests", account="live") == 1
    bot.expire(3600)
    assert value(bot, "autorepay_pending_requests", account="live") == 0


def test_a_change_outside_the_bot_is_counted(bot: Harness) -> None:
    runtime = bot.runtime
    [account] = [a for a in runtime.settings.accounts if a.name == "live"]
    assert bot.server is not None
    bot.server.call(runtime.service.observe(account))  # the baseline
    live(bot.okx).auto_repay = True  # flipped in OKX's web UI
    bot.server.call(runtime.service.observe(account))
    assert value(bot, "autorepay_drift_total", account="live") == 1
    assert value(bot, "autorepay_drift_total", account="demo") == 0


# --- bounded labels (no bot needed) -------------------------------------------------------
def samples_of(metrics: Metrics) -> list[Any]:
    return [s for family in text_string_to_metric_families(metrics.render().decode())
            for s in family.samples]


def test_accounts_not_configured_are_other() -> None:
    metrics = Metrics(["desk-a"])
    metrics.change("desk-a", "done")
    metrics.change("U0MALLORY", "done")
    metrics.drift("ar-1234abcd")
    accounts = {s.labels["account"] for s in samples_of(metrics) if "account" in s.labels}
    assert accounts == {"desk-a", OTHER}


@pytest.mark.parametrize("error", ["has space", "x" * 65, "ünïcode", "a\nb", ""])
def test_free_form_label_values_that_are_not_tokens_are_other(error: str) -> None:
    metrics = Metrics()
    metrics.slack_error("chat.postMessage", error)
    metrics.okx_request("/api/v5/account/config", error, 0.1)
    [slack] = [s for s in samples_of(metrics) if s.name == "autorepay_slack_errors_total"]
    assert slack.labels["error"] == OTHER
    codes = {s.labels["code"] for s in samples_of(metrics)
             if s.name == "autorepay_okx_requests_total" and s.value}
    assert codes == {OTHER}


def test_a_free_form_label_has_at_most_so_many_values() -> None:
    metrics = Metrics()
    for n in range(MAX_TOKENS + 20):
        metrics.slack_error("chat.postMessage", f"error_{n}")
    errors = {s.labels["error"] for s in samples_of(metrics)
              if s.name == "autorepay_slack_errors_total"}
    assert len(errors) == MAX_TOKENS + 1 and OTHER in errors


def test_unknown_actions_outcomes_and_verdicts_are_other() -> None:
    metrics = Metrics()
    metrics.command("U0ALICE01", "requested")
    metrics.command("on", "something new")
    metrics.decision("ar-1234abcd")
    counted = {(s.name, tuple(sorted(s.labels.values()))): s.value
               for s in samples_of(metrics) if s.value}
    assert counted == {("autorepay_commands_total", (OTHER, OTHER)): 2,
                       ("autorepay_decisions_total", (OTHER,)): 1}
