"""SPEC §3.8, §3.9: traders get words and one consistent story; the log gets the details.

The harness already checks, after every test, that nothing the bot sent to Slack holds
operator text (variable names, exception classes, `python -m bot`); these tests pin the
words traders do see, and that the operator's details did reach the log.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest

from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, MALLORY, Harness, live, operator_text
from tests.fakes.okx_server import SET_AUTO_REPAY

CONFIG = "/api/v5/account/config"


def warnings(caplog: pytest.LogCaptureFixture, logger: str) -> str:
    return "\n".join(r.getMessage() for r in caplog.records
                     if r.name == logger and r.levelno == logging.WARNING)


@dataclass
class Story:
    """What the three audiences of a finished request were told."""

    thread: str
    approval: str  # the approval message, as last updated
    requester: str

    @property
    def all(self) -> list[str]:
        return [self.thread, self.approval, self.requester]


def story(bot: Harness) -> Story:
    ts, _ = bot.approval_message()
    thread = bot.thread_replies()[0]["text"]
    updates = bot.slack.wait_for(lambda: (u := [
        c for c in bot.slack.called("chat.update") if c.args.get("ts") == ts]) and
        "applying" not in str(u[-1].args["blocks"]) and u)
    notes = bot.slack.wait_for(lambda: bot.slack.dms(ALICE))  # the note is a DM
    return Story(thread, str(updates[-1].args["blocks"]), notes[-1]["text"])


def test_the_guard_recognises_operator_text() -> None:
    said = json.dumps([["chat.postMessage", {"text": "ConnectError (OKX code network)\n"
                        "run `python -m bot credentials set --demo` or set OKX_DEMO_API_KEY"}],
                       ["response", {"blocks": [{"text": "\u2014AUTOREPAY_APPROVERS, PORT=1,"
                                                         " Traceback"}]}]])
    assert operator_text(said) == ["AUTOREPAY_APPROVERS", "ConnectError", "OKX_DEMO_API_KEY",
                                   "PORT=", "Traceback", "python -m bot"]
    assert operator_text(json.dumps([["chat.postMessage", {"text": "OKX could not be "
                                      "reached (network error). Nothing was changed."}]])) == []


# --- OKX unreachable --------------------------------------------------------------------
def test_okx_unreachable_during_status_is_told_in_words(
        bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    bot.okx.fail_next("drop", times=50, path=CONFIG)
    text = bot.command("status live").followup()
    assert "*live* (LIVE) can't be used right now: OKX could not be reached" in text
    assert "network" in text and "OKX code" not in text
    every = bot.command("status").followup()  # every account, one line each
    assert "*live* (LIVE): can't be read right now: OKX could not be reached" in every
    assert "network" in every and "OKX code" not in every
    log = warnings(caplog, "bot.service")
    assert "account=live" in log and "code=network" in log
    assert "Error" in log  # the exception class underneath, for the operator


def test_okx_unreachable_during_request_posts_nothing(bot: Harness) -> None:
    bot.okx.fail_next("http500", times=50, path=CONFIG)
    text = bot.command("on").followup()
    assert "can't be used right now: OKX had a server error (HTTP 500)." in text
    assert bot.slack.posted() == []


def test_key_okx_does_not_know_points_traders_to_people_and_operators_to_the_variable(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.environ["OKX_API_KEY"] = "key-from-another-okx-site"
    text = harness.start().command("status").followup()
    assert "OKX does not recognise the API key" in text and "eea.okx.com" in text
    assert "ask whoever runs the bot" in text and "OKX code 50111" in text
    log = warnings(caplog, "bot.service")
    assert "code=50111" in log and "Invalid OK-ACCESS-KEY" in log
    assert "OKX_BASE_URL" in log


# --- an account the bot has no credentials for -----------------------------------------
def test_account_without_credentials_is_not_set_up_and_the_log_says_what_to_set(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("OKX_DEMO_API_KEY", "OKX_DEMO_API_SECRET", "OKX_DEMO_API_PASSPHRASE"):
        del harness.environ[name]
    bot = harness.start()
    for command in ("demo status", "demo on"):
        text = bot.command(command).followup()
        assert text.startswith(":warning: [DEMO] ")
        assert "*demo* (DEMO) can't be used right now: it isn't set up in the bot" in text
        assert "ask whoever runs it" in text
    log = warnings(caplog, "bot.service")
    assert "account=demo" in log and "OKX_DEMO_API_KEY" in log
    assert "credentials set --account demo" in log
    assert bot.slack.posted() == []


# --- the approval channel ---------------------------------------------------------------
def test_approval_channel_not_postable_is_words_for_traders_and_a_hint_in_the_log(
        bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    bot.slack.fail("chat.postMessage", "not_in_channel")
    text = bot.command("on").followup()
    assert f"could not be put up for approval: the bot can't post in <#{APPROVALS}>" in text
    assert "not a member of that channel" in text and "not_in_channel" in text
    assert "ask whoever runs the bot" in text and "Nothing was changed" in text
    log = warnings(caplog, "bot.service")
    assert f"channel={APPROVALS}" in log and "slack:not_in_channel" in log
    assert "AUTOREPAY_APPROVAL_CHANNEL" in log


# --- outcome unknown: one story in three places -----------------------------------------
@pytest.mark.parametrize(("fault", "command", "why", "check"), [
    ("50001", "on", "OKX says its service is temporarily unavailable (OKX code 50001).",
     "`/autorepay status live`"),
    ("50004", "on", "OKX timed out answering (OKX code 50004).", "`/autorepay status live`"),
    ("http500", "demo on", "OKX had a server error (HTTP 500).", "`/autorepay status demo`"),
    ("drop", "on", "OKX could not be reached (network error).", "`/autorepay status live`"),
])
def test_outage_during_the_write_tells_one_story_of_an_unknown_outcome(
        bot: Harness, fault: str, command: str, why: str, check: str) -> None:
    bot.command(command).followup()
    bot.okx.fail_next(fault, times=50, path=SET_AUTO_REPAY)
    bot.click(BOB, APPROVE)
    told = story(bot)
    for text in told.all:
        assert "outcome is unknown" in text.lower() and why in text and check in text
        for contradiction in ("could not be switched", "Nothing was changed", "Failed",
                              "did not answer in time"):
            assert contradiction not in text
    assert "may or may not" in told.thread


# --- a refusal: nothing changed, said the same way everywhere ---------------------------
@pytest.mark.parametrize(("arrange", "words", "code"), [
    (lambda a: setattr(a, "acct_lv", "3"), "not in Spot mode", "51010"),
    (lambda a: setattr(a, "perm", "read_only"), "lacks the Trade permission", "50120"),
])
def test_refusal_says_nothing_was_changed_in_all_three_places(
        bot: Harness, arrange: object, words: str, code: str) -> None:
    bot.command("on").followup()
    arrange(live(bot.okx))  # type: ignore[operator]  # changed between request and click
    bot.click(BOB, APPROVE)
    for text in story(bot).all:
        assert "Nothing was changed" in text and words in text
        assert f"(OKX code {code})" in text
        assert "unknown" not in text.lower() and "status`" not in text


# --- refusals of people are logged with their reason ------------------------------------
def test_refusal_log_line_carries_the_reason(bot: Harness,
                                             caplog: pytest.LogCaptureFixture) -> None:
    text = bot.command("on", user=MALLORY).followup()
    assert "not on the list of people who may request" in text
    [line] = [r.getMessage() for r in caplog.records
              if r.name == "bot.service" and r.getMessage().startswith("refused ")]
    assert f"user={MALLORY}" in line and "action=request" in line
    assert "not on the list of people who may request" in line
    assert "AUTOREPAY_REQUESTERS" in line  # which setting to change, for the operator
