"""Named accounts end to end (README "Commands in Slack", "Several accounts"), through the
bot's HTTP endpoint: `main` and `desk-a` (live, different uids) and `paper` (demo), each
with its own key on the loopback OKX server and its own OKX_<NAME>_API_* variables."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bot.accounts import Account
from bot.approvals import ChangeRequest, Status
from bot.config import Access
from handlers.blocks import APPROVE, DENY
from tests.bot.conftest import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    DAVE,
    MALLORY,
    OKX_ENV,
    Harness,
    Reply,
    demo,
    everything_said,
    live,
)
from tests.conftest import ON_BOTH_BACKENDS
from tests.fakes.okx_server import CONFIG, SET_AUTO_REPAY, FakeAccount, FakeOkx, Recorded
from tests.fakes.slack_requests import find_action

pytestmark = ON_BOTH_BACKENDS


@dataclass(frozen=True)
class Key:
    name: str
    api_key: str
    secret: str
    passphrase: str
    uid: str
    demo: bool = False

    @property
    def account(self) -> Account:
        return Account(self.name, demo=self.demo)

    @property
    def environment(self) -> str:
        return "DEMO" if self.demo else "LIVE"

    def env(self) -> dict[str, str]:
        prefix = "OKX_" + self.name.upper().replace("-", "_") + "_API_"
        return {prefix + "KEY": self.api_key, prefix + "SECRET": self.secret,
                prefix + "PASSPHRASE": self.passphrase}


MAIN = Key("main", "main-key-0001", "MAIN-SECRET-never-shown", "MAIN-PASS-never-shown",
           "310000000001")
DESK = Key("desk-a", "desk-a-key-0002", "DESK-SECRET-never-shown", "DESK-PASS-never-shown",
           "310000000002")
PAPER = Key("paper", "paper-key-0003", "PAPER-SECRET-never-shown", "PAPER-PASS-never-shown",
            "310000000003", demo=True)
KEYS = (MAIN, DESK, PAPER)
ACCOUNTS = tuple(key.account for key in KEYS)
NAMED_SECRETS = [text for key in KEYS for text in (key.secret, key.passphrase)]


# --- fixtures and helpers ---------------------------------------------------------------
def add_keys(harness: Harness, keys: tuple[Key, ...]) -> None:
    """Only these accounts' variables in the bot's environment (no OKX_API_* at all), and
    their keys on the loopback OKX."""
    harness.environ.clear()
    for key in keys:
        harness.environ.update(key.env())
        harness.okx.add_account(api_key=key.api_key, secret=key.secret,
                                passphrase=key.passphrase, demo=key.demo, uid=key.uid,
                                label=f"{key.name}-label")


@pytest.fixture
def named(harness: Harness, caplog: pytest.LogCaptureFixture) -> Iterator[Harness]:
    """The harness set up for main, desk-a and paper (started by each test, with its own
    settings). No named account's secret may reach Slack or the logs either."""
    add_keys(harness, KEYS)
    harness.settings = replace(harness.settings, accounts=ACCOUNTS)
    yield harness
    said = everything_said(harness.slack) + caplog.text
    for secret in NAMED_SECRETS:
        assert secret not in said, "a named account's secret reached Slack or the logs"


@pytest.fixture
def nbot(named: Harness) -> Harness:
    """Started with the global lists of the harness: requesters ALICE and S0TRADERS,
    approvers BOB, CAROL and ALICE."""
    return named.start()


def fake(okx: FakeOkx, key: Key) -> FakeAccount:
    return okx.accounts[key.api_key]


def header(request: Recorded, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), None)


def signed_with(request: Recorded) -> str | None:
    return header(request, "OK-ACCESS-KEY")


def writes(okx: FakeOkx) -> list[Recorded]:
    return [r for r in okx.requests if r.path.split("?")[0] == SET_AUTO_REPAY]


def reads(okx: FakeOkx, key: Key | None = None) -> list[Recorded]:
    return [r for r in okx.requests if r.path.split("?")[0] == CONFIG
            and (key is None or signed_with(r) == key.api_key)]


def request_id(message: dict[str, Any]) -> str:
    return str(find_action(message["blocks"], APPROVE)["value"])


def requested(bot: Harness, text: str, user: str = ALICE) -> ChangeRequest:
    """Make a request; it is pending once its approval message is up."""
    note = bot.command(text, user).followup()
    assert "waiting for approval" in note, note
    found = re.search(r"`(ar-[0-9a-f]+)`", note)
    assert found, note
    request: ChangeRequest | None = bot.store.get(found[1])
    assert request is not None and request.status is Status.PENDING
    return request


def message_of(bot: Harness, request: ChangeRequest) -> tuple[int, str, dict[str, Any]]:
    """(index for click(), ts, args) of a request's approval message."""
    posts = bot.slack.wait_for(lambda: bot.slack.posted(APPROVALS))
    calls = [c for c in bot.slack.called("chat.postMessage") if c.args in posts]
    for index, call in enumerate(calls):
        if request_id(call.args) == request.id:
            return index, str(call.answer["ts"]), call.args
    raise AssertionError(f"no approval message for {request.id}")


def click(bot: Harness, user: str, request: ChangeRequest, action: str = APPROVE) -> Reply:
    index, _, _ = message_of(bot, request)
    return bot.click(user, action, index=index)


def finished(bot: Harness, request: ChangeRequest, timeout: float = 10.0) -> ChangeRequest:
    return bot.until(lambda: (r := bot.store.get(request.id)) and  # type: ignore[no-any-return]
                     r.status not in (Status.PENDING, Status.APPROVED) and r, timeout)


def thread_of(bot: Harness, request: ChangeRequest) -> list[dict[str, Any]]:
    _, ts, _ = message_of(bot, request)
    return bot.slack.wait_for(lambda: bot.slack.thread(ts))  # type: ignore[no-any-return]


def updates_of(bot: Harness, request: ChangeRequest, containing: str) -> list[dict[str, Any]]:
    _, ts, _ = message_of(bot, request)
    return bot.slack.wait_for(lambda: [  # type: ignore[no-any-return]
        c.args for c in bot.slack.called("chat.update")
        if c.args.get("ts") == ts and containing in json.dumps(c.args)])


def has_buttons(args: dict[str, Any]) -> bool:
    return any(block.get("type") == "actions" for block in args.get("blocks", []))


# --- each command form ------------------------------------------------------------------
def test_status_alone_lists_every_account_in_one_reply(nbot: Harness) -> None:
    fake(nbot.okx, MAIN).auto_repay = True
    fake(nbot.okx, PAPER).auto_repay = True
    reply = nbot.command("status", user=BOB)
    text = reply.followup()
    assert "*main* (LIVE): auto repay *ON* · OKX uid 310000000001" in text
    assert "*desk-a* (LIVE): auto repay *OFF* · OKX uid 310000000002" in text
    assert "*paper* (DEMO): auto repay *ON* · OKX uid 310000000003" in text
    assert text.index("*main*") < text.index("*desk-a*") < text.index("*paper*")
    assert len(nbot.slack.responses_to(reply.name)) == 1  # one reply, not one per account
    # one read per account, each with its own key; nothing written, nothing to approve
    assert sorted(signed_with(r) or "" for r in reads(nbot.okx)) == sorted(
        k.api_key for k in KEYS)
    assert writes(nbot.okx) == [] and nbot.slack.posted(APPROVALS) == []


@pytest.mark.parametrize("text", ["status desk-a", "desk-a status", "desk-a", "  DESK-A  "])
def test_status_of_one_account_reads_only_that_account(nbot: Harness, text: str) -> None:
    fake(nbot.okx, DESK).auto_repay = True
    answer = nbot.command(text).followup()
    assert re.search(r"Auto repay is \*ON\* on (the )?\*desk-a\* \(LIVE\)", answer), answer
    assert "310000000002" in answer and "main" not in answer and "paper" not in answer
    assert [signed_with(r) for r in nbot.okx.requests] == [DESK.api_key]


def test_a_demo_account_alone_is_its_status_marked_demo(nbot: Harness) -> None:
    answer = nbot.command("paper").followup()
    assert answer.startswith("[DEMO] ") and "*paper* (DEMO)" in answer, answer
    assert "310000000003" in answer
    [read] = nbot.okx.requests
    assert signed_with(read) == PAPER.api_key and header(read, "x-simulated-trading") == "1"


def test_request_forms_name_the_account_and_carry_the_reason(nbot: Harness) -> None:
    fake(nbot.okx, MAIN).auto_repay = True  # so that `off main` has something to do
    first = requested(nbot, "desk-a on")
    second = requested(nbot, "off main -- rolling the hedge")
    third = requested(nbot, "paper on \u2014 rehearsal before the live switch")  # em dash
    assert (first.account, first.desired, first.reason) == (DESK.account, True, "")
    assert (second.account, second.desired, second.reason) == (
        MAIN.account, False, "rolling the hedge")
    assert (third.account, third.desired, third.reason) == (
        PAPER.account, True, "rehearsal before the live switch")
    assert third.account.demo
    assert len(nbot.store.with_status(Status.PENDING)) == 3
    assert writes(nbot.okx) == []  # nothing happens before approval


def test_on_alone_with_two_live_accounts_asks_which(nbot: Harness) -> None:
    reply = nbot.command("on")
    assert "Which account?" in reply.ack_text
    assert "main, desk-a, paper (DEMO)" in reply.ack_text
    assert nbot.store.with_status(Status.PENDING) == []
    assert nbot.okx.requests == [] and nbot.slack.posted(APPROVALS) == []
    assert [e.event for e in nbot.store.audit_events()] == ["started"]


def test_help_lists_the_configured_accounts(nbot: Harness) -> None:
    for text in ("help", ""):
        reply = nbot.command(text)
        assert "Accounts: main, desk-a, paper (DEMO)." in reply.ack_text
        assert "`/autorepay cancel ID`" in reply.ack_text
        assert "Without an account" not in reply.ack_text  # two live: no default
    assert nbot.okx.requests == []


# --- only the named account's key is used -----------------------------------------------
def test_approving_on_desk_a_writes_desk_a_only(nbot: Harness) -> None:
    request = requested(nbot, "on desk-a -- hedge book rolled, repay daily")
    click(nbot, BOB, request)
    done = finished(nbot, request)
    assert done.status is Status.DONE and done.result is True
    [write] = writes(nbot.okx)
    assert signed_with(write) == DESK.api_key and json.loads(write.body) == {"autoRepay": True}
    assert header(write, "x-simulated-trading") is None
    assert fake(nbot.okx, DESK).auto_repay is True
    assert fake(nbot.okx, MAIN).auto_repay is False and fake(nbot.okx, PAPER).auto_repay is False
    # the thread reply: account, LIVE, uid, reason, ID
    [reply] = thread_of(nbot, request)
    assert "Auto repay is now *ON* on *desk-a* (LIVE)" in reply["text"]
    assert "310000000002" in reply["text"]
    assert "Reason: hedge book rolled, repay daily" in json.dumps(reply["blocks"])
    assert request.id in json.dumps(reply["blocks"])
    # the requester's DM: the final outcome, naming the account
    [told] = nbot.slack.wait_for(lambda: nbot.slack.dms(ALICE))
    assert "*desk-a* (LIVE)" in told["text"] and "Done" in told["text"]
    assert request.id in told["text"]
    # only desk-a's key was ever used, and a status over all shows the change
    assert {signed_with(r) for r in nbot.okx.requests} == {DESK.api_key}
    overview = nbot.command("status").followup()
    assert "*desk-a* (LIVE): auto repay *ON*" in overview
    assert "*main* (LIVE): auto repay *OFF*" in overview
    assert "*paper* (DEMO): auto repay *OFF*" in overview


def test_demo_requests_are_simulated_and_live_ones_not(nbot: Harness) -> None:
    request = requested(nbot, "paper on -- rehearsal")
    click(nbot, BOB, request)
    assert finished(nbot, request).status is Status.DONE
    nbot.command("status").followup()
    assert fake(nbot.okx, PAPER).auto_repay is True
    assert fake(nbot.okx, MAIN).auto_repay is False and fake(nbot.okx, DESK).auto_repay is False
    [write] = writes(nbot.okx)
    assert signed_with(write) == PAPER.api_key
    signed = [r for r in nbot.okx.requests if signed_with(r)]
    by_key = {key.api_key: key for key in KEYS}
    assert {signed_with(r) for r in signed} == set(by_key)
    for r in signed:
        simulated = header(r, "x-simulated-trading")
        assert (simulated == "1") == by_key[str(signed_with(r))].demo, (r.path, signed_with(r))
    assert all(r.code == "0" for r in signed)  # OKX took every key in its environment
    [thread] = thread_of(nbot, request)
    assert thread["text"].startswith("[DEMO] ") and "*paper* (DEMO)" in thread["text"]


def test_an_account_without_a_key_is_unavailable_and_the_others_work(named: Harness) -> None:
    for name in DESK.env():
        del named.environ[name]
    bot = named.start()
    overview = bot.command("status").followup()
    assert "*desk-a* (LIVE): can't be read right now" in overview, overview
    assert "*main* (LIVE): auto repay *OFF*" in overview
    assert "*paper* (DEMO): auto repay *OFF*" in overview
    assert "can't be used right now" in bot.command("on desk-a").followup()
    assert bot.store.with_status(Status.PENDING) == []
    request = requested(bot, "on main")
    click(bot, BOB, request)
    assert finished(bot, request).status is Status.DONE
    assert [signed_with(w) for w in writes(bot.okx)] == [MAIN.api_key]
    assert DESK.api_key not in {signed_with(r) for r in bot.okx.requests}


def test_a_request_whose_account_was_removed_or_changed_is_not_sent_elsewhere(
        named: Harness) -> None:
    """README: a pending request whose account has since been removed, or changed between
    live and demo, fails when approved instead of going to another key."""
    bot = named.start()
    paper = requested(bot, "paper on -- rehearsal")
    desk = requested(bot, "on desk-a")
    bot.stop()
    bot.start(accounts=(Account("main"), Account("paper")))  # desk-a gone; paper now live
    for request in (paper, desk):
        click(bot, BOB, request)
        failed = finished(bot, request)
        assert failed.status is Status.FAILED and failed.error_code == "credentials"
        assert "removed from the bot, or changed between LIVE and DEMO" in \
            thread_of(bot, request)[0]["text"]
    assert writes(bot.okx) == []
    assert fake(bot.okx, PAPER).auto_repay is False and fake(bot.okx, DESK).auto_repay is False


# --- per-account approvers ----------------------------------------------------------------
def test_an_approver_of_one_account_approves_that_account_only(named: Harness) -> None:
    bot = named.start(approvers=(BOB,),
                      per_account={"desk-a": Access(requesters=(ALICE,), approvers=(CAROL,))})
    fake(bot.okx, MAIN).auto_repay = True
    desk = requested(bot, "on desk-a -- desk")
    main = requested(bot, "off main -- main")
    # BOB approves for every account but desk-a; CAROL for desk-a alone
    assert "not an approver" in click(bot, BOB, desk).followup()
    assert "not an approver" in click(bot, CAROL, main).followup()
    assert writes(bot.okx) == []
    assert bot.store.get(desk.id).status is Status.PENDING
    assert bot.store.get(main.id).status is Status.PENDING
    events = [(e.event, e.actor) for e in bot.store.audit_events()]
    assert ("refused:approve", BOB) in events and ("refused:approve", CAROL) in events
    click(bot, CAROL, desk)
    assert finished(bot, desk).status is Status.DONE
    assert [signed_with(w) for w in writes(bot.okx)] == [DESK.api_key]
    assert fake(bot.okx, MAIN).auto_repay is True  # main untouched by desk-a's approval
    click(bot, BOB, main)
    assert finished(bot, main).status is Status.DONE
    assert [signed_with(w) for w in writes(bot.okx)] == [DESK.api_key, MAIN.api_key]
    # the approval messages mention each account's own approvers
    assert "Approvers: <@U0CAROL01>" in json.dumps(message_of(bot, desk)[2]["blocks"])
    assert "<@U0BOB0001>" not in message_of(bot, desk)[2]["text"]
    assert "Approvers: <@U0BOB0001>" in json.dumps(message_of(bot, main)[2]["blocks"])
    assert "<@U0CAROL01>" not in message_of(bot, main)[2]["text"]


def test_per_account_people_see_and_ask_for_their_accounts_only(named: Harness) -> None:
    bot = named.start(approvers=(BOB,),
                      per_account={"desk-a": Access(requesters=(ALICE,), approvers=(CAROL,))})
    # DAVE asks through S0TRADERS, a global requester: not desk-a's
    refused = bot.command("on desk-a", user=DAVE).followup()
    assert "not on the list" in refused
    assert bot.store.with_status(Status.PENDING) == [] and bot.okx.requests == []
    # CAROL, an approver of desk-a only, sees desk-a only
    overview = bot.command("status", user=CAROL).followup()
    assert "*desk-a*" in overview and "*main*" not in overview and "*paper*" not in overview
    assert {signed_with(r) for r in bot.okx.requests} == {DESK.api_key}
    desk = requested(bot, "on desk-a")
    paper = requested(bot, "paper on")
    listing = bot.command("pending", user=CAROL).followup()
    assert desk.id in listing and "*paper*" not in listing
    # BOB, a global approver, may not cancel desk-a's request; CAROL may (desk-a's only)
    assert "may cancel" in bot.command(f"cancel {paper.id}", user=CAROL).followup()
    assert bot.store.get(paper.id).status is Status.PENDING
    assert "may cancel" in bot.command(f"cancel {desk.id}", user=BOB).followup()
    assert bot.store.get(desk.id).status is Status.PENDING
    assert "Cancelled" in bot.command(f"cancel {desk.id}", user=CAROL).followup()
    assert bot.store.get(desk.id).status is Status.CANCELLED


# --- the approval message -------------------------------------------------------------------
def test_approval_message_names_account_environment_uid_reason_and_approvers(
        named: Harness) -> None:
    bot = named.start(approvers=(BOB,),
                      per_account={"paper": Access(requesters=(ALICE,),
                                                   approvers=(CAROL, "S0TRADERS"))})
    desk = requested(bot, "on desk-a -- hedge book rolled")
    paper = requested(bot, "paper on -- rehearsal")
    _, _, message = message_of(bot, desk)
    said = json.dumps(message["blocks"])
    assert "<@U0ALICE01> asks to switch auto repay *ON* on *desk-a* (LIVE)." in message["text"]
    assert "OKX uid 310000000002" in said and "Reason: hedge book rolled" in said
    assert "Approvers: <@U0BOB0001>" in said and "<@U0BOB0001>" in message["text"]
    confirm = find_confirm(message)
    assert "desk-a" in confirm and "LIVE" in confirm and "310000000002" in confirm
    _, _, message = message_of(bot, paper)
    said = json.dumps(message["blocks"])
    assert message["text"].startswith("[DEMO] ") and "*paper* (DEMO)" in message["text"]
    assert "OKX uid 310000000003" in said and "Reason: rehearsal" in said
    # a user group among the approvers is mentioned as a group
    assert "Approvers: <@U0CAROL01> <!subteam^S0TRADERS>" in said
    assert "<!subteam^S0TRADERS>" in message["text"] and "<@U0BOB0001>" not in said
    confirm = find_confirm(message)
    assert "paper" in confirm and "DEMO" in confirm and "310000000003" in confirm


def find_confirm(message: dict[str, Any]) -> str:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == APPROVE:
                return str(element["confirm"]["text"]["text"])
    raise AssertionError("no Approve button")


def test_no_mentions_when_turned_off(named: Harness) -> None:
    bot = named.start(mention_approvers=False,
                      per_account={"paper": Access(requesters=(ALICE,),
                                                   approvers=(CAROL, "S0TRADERS"))})
    for text in ("on desk-a -- x", "paper on -- y"):
        request = requested(bot, text)
        _, _, message = message_of(bot, request)
        said = message["text"] + json.dumps(message["blocks"])
        assert "Approvers:" not in said and "subteam" not in said
        assert set(re.findall(r"<@(U\w+)>", said)) == {ALICE}  # the requester only
        assert "Reason:" in said and request.account.environment in said


# --- cancel ---------------------------------------------------------------------------------
def test_the_requester_cancels_and_the_buttons_go(nbot: Harness) -> None:
    request = requested(nbot, "on desk-a -- changed my mind later")
    answer = nbot.command(f"cancel {request.id}").followup()
    assert f"Cancelled `{request.id}`" in answer and "*desk-a* (LIVE)" in answer
    assert nbot.store.get(request.id).status is Status.CANCELLED
    [update] = updates_of(nbot, request, "Cancelled by")
    assert not has_buttons(update) and "<@U0ALICE01>" in json.dumps(update["blocks"])
    [thread] = thread_of(nbot, request)
    assert "cancelled the request" in thread["text"] and "*desk-a* (LIVE)" in thread["text"]
    # its button, clicked anyway, changes nothing
    assert "already cancelled" in click(nbot, BOB, request).followup()
    assert writes(nbot.okx) == [] and fake(nbot.okx, DESK).auto_repay is False
    assert nbot.store.get(request.id).status is Status.CANCELLED
    assert [e.actor for e in nbot.store.audit_events(request.id)
            if e.event == "cancelled"] == [ALICE]
    time.sleep(0.3)  # a DM would have been sent with the update and the thread reply
    assert nbot.slack.dms(ALICE) == []  # the command's answer told them


def test_an_approver_cancels_and_the_requester_is_told(nbot: Harness) -> None:
    request = requested(nbot, "paper on")
    answer = nbot.command(f"cancel {request.id}", user=BOB).followup()
    assert f"Cancelled `{request.id}`" in answer and "*paper* (DEMO)" in answer
    [told] = nbot.slack.wait_for(lambda: nbot.slack.dms(ALICE))
    assert "Cancelled by <@U0BOB0001>" in told["text"] and "*paper* (DEMO)" in told["text"]
    [update] = updates_of(nbot, request, "Cancelled by")
    assert not has_buttons(update)
    assert "<@U0BOB0001> cancelled" in thread_of(nbot, request)[0]["text"]


def test_someone_else_cannot_cancel(nbot: Harness) -> None:
    request = requested(nbot, "on desk-a")
    for user in (MALLORY, DAVE):  # nobody; a requester, but not of this request
        answer = nbot.command(f"cancel {request.id}", user=user).followup()
        assert f"There is no pending request `{request.id}` that you may cancel" in answer, \
            answer
    assert nbot.store.get(request.id).status is Status.PENDING
    assert [(e.actor, e.request_id) for e in nbot.store.audit_events(request.id)
            if e.event == "refused:cancel"] == [(MALLORY, request.id), (DAVE, request.id)]
    assert nbot.slack.called("chat.update") == []
    click(nbot, BOB, request)  # still approvable
    assert finished(nbot, request).status is Status.DONE


def test_cancel_of_an_unknown_or_finished_request(nbot: Harness) -> None:
    answer = nbot.command("cancel ar-deadbeef").followup()
    assert "There is no pending request `ar-deadbeef` that you may cancel" in answer
    request = requested(nbot, "on desk-a")
    click(nbot, BOB, request)
    assert finished(nbot, request).status is Status.DONE
    answer = nbot.command(f"cancel {request.id}").followup()
    assert f"`{request.id}` can't be cancelled: it is done already" in answer, answer
    assert nbot.store.get(request.id).status is Status.DONE
    assert "cancelled" not in [e.event for e in nbot.store.audit_events(request.id)]


def test_cancelling_twice_says_it_was_cancelled_already(nbot: Harness) -> None:
    request = requested(nbot, "on desk-a")
    assert "Cancelled" in nbot.command(f"cancel {request.id}").followup()
    again = nbot.command(f"cancel {request.id}").followup()
    assert f"`{request.id}` can't be cancelled: it is cancelled already" in again, again
    assert [e.event for e in nbot.store.audit_events(request.id)].count("cancelled") == 1


def test_outsiders_learn_nothing_about_which_ids_exist(nbot: Harness) -> None:
    request = requested(nbot, "on desk-a")
    known = nbot.command(f"cancel {request.id}", user=MALLORY).followup()
    unknown = nbot.command("cancel ar-00000000", user=MALLORY).followup()
    assert known.replace(request.id, "ar-00000000") == unknown, (known, unknown)
    assert nbot.store.get(request.id).status is Status.PENDING
    # An approver of another account learns no more than an outsider.
    dave = Access(requesters=(ALICE,), approvers=(DAVE,))  # approves desk-a, nothing else
    nbot.stop()
    bot = nbot.start(per_account={"desk-a": dave})
    main = requested(bot, "on main")
    known = bot.command(f"cancel {main.id}", user=DAVE).followup()
    unknown = bot.command("cancel ar-00000000", user=DAVE).followup()
    assert known.replace(main.id, "ar-00000000") == unknown, (known, unknown)


# --- one open request per account -----------------------------------------------------------
def test_requests_on_different_accounts_do_not_supersede_each_other(nbot: Harness) -> None:
    fake(nbot.okx, MAIN).auto_repay = True
    on_desk = requested(nbot, "on desk-a")
    off_main = requested(nbot, "off main")
    assert {r.id for r in nbot.store.with_status(Status.PENDING)} == {on_desk.id, off_main.id}
    fake(nbot.okx, DESK).auto_repay = True  # switched on meanwhile (OKX's web UI)
    off_desk = requested(nbot, "off desk-a", user=DAVE)
    old = nbot.store.get(on_desk.id)
    assert old.status is Status.SUPERSEDED and old.superseded_by == off_desk.id
    assert nbot.store.get(off_main.id).status is Status.PENDING
    assert {r.id for r in nbot.store.with_status(Status.PENDING)} == {off_main.id, off_desk.id}
    [update] = updates_of(nbot, on_desk, "Superseded by")
    assert not has_buttons(update)
    assert not any(c.args.get("ts") == message_of(nbot, off_main)[1]
                   for c in nbot.slack.called("chat.update"))


# --- pending and history ----------------------------------------------------------------------
def test_pending_lists_each_request_with_id_account_and_link(nbot: Harness) -> None:
    fake(nbot.okx, MAIN).auto_repay = True
    desk = requested(nbot, "on desk-a -- for the desk")
    main = requested(nbot, "off main", user=DAVE)
    paper = requested(nbot, "paper on")
    listing = nbot.command("pending", user=BOB).followup()
    assert "Waiting for approval (3):" in listing
    lines = listing.splitlines()[1:]
    assert len(lines) == 3
    for line, request, account in ((lines[0], desk, "*desk-a* (LIVE)"),
                                   (lines[1], main, "*main* (LIVE)"),
                                   (lines[2], paper, "*paper* (DEMO)")):
        _, ts, _ = message_of(nbot, request)
        assert f"`{request.id}`" in line and account in line, line
        assert f"<@{request.requester}>" in line
        assert f"https://slack.com/archives/{APPROVALS}/p{ts.replace('.', '')}" in line
    assert "“for the desk”" in lines[0] and "“" not in lines[1]


def test_history_newest_first_across_accounts(nbot: Harness) -> None:
    done = requested(nbot, "on desk-a -- first")
    click(nbot, BOB, done)
    assert finished(nbot, done).status is Status.DONE
    denied = requested(nbot, "on main -- second")
    click(nbot, BOB, denied, DENY)
    assert finished(nbot, denied).status is Status.DENIED
    cancelled = requested(nbot, "off desk-a -- third")
    nbot.command(f"cancel {cancelled.id}").followup()
    assert nbot.store.get(cancelled.id).status is Status.CANCELLED
    expired = requested(nbot, "paper on -- fourth")
    nbot.expire(901)
    assert nbot.store.get(expired.id).status is Status.EXPIRED

    everything = nbot.command("history").followup()
    order = [expired, cancelled, denied, done]  # newest first
    ids = re.findall(r"`(ar-[0-9a-f]+)`", everything)
    assert ids == [r.id for r in order], everything
    lines = everything.splitlines()[1:]
    for line, account, reason in zip(lines, ("paper", "desk-a", "main", "desk-a"),
                                     ("fourth", "third", "second", "first"), strict=True):
        assert f"*{account}*" in line and f"“{reason}”" in line, line
    assert "Expired" in lines[0] and "Cancelled by" in lines[1]
    assert "Denied by" in lines[2] and "Done" in lines[3]

    desk = nbot.command("history desk-a 2").followup()
    assert re.findall(r"`(ar-[0-9a-f]+)`", desk) == [cancelled.id, done.id], desk
    assert "*main*" not in desk and "*paper*" not in desk
    assert re.findall(r"`(ar-[0-9a-f]+)`", nbot.command("history desk-a 1").followup()) == [
        cancelled.id]
    assert re.findall(r"`(ar-[0-9a-f]+)`", nbot.command("history 2").followup()) == [
        expired.id, cancelled.id]


# --- a reason required ----------------------------------------------------------------------
def test_a_required_reason_is_asked_for_and_shown_everywhere(named: Harness) -> None:
    bot = named.start(require_reason=True)
    for text in ("on desk-a", "desk-a on --", "on desk-a \u2014   "):
        reply = bot.command(text)
        assert "A reason is required" in reply.ack_text, (text, reply.ack_text)
    assert bot.command("help").ack_text.count("A reason is required") == 1
    assert bot.store.with_status(Status.PENDING) == [] and bot.okx.requests == []
    assert [e.event for e in bot.store.audit_events()] == ["started"]
    # status needs none
    assert "*desk-a* (LIVE)" in bot.command("desk-a").followup()

    request = requested(bot, "on desk-a -- the hedge rolled")
    assert request.reason == "the hedge rolled"
    assert "“the hedge rolled”" in bot.command("pending").followup()
    _, _, message = message_of(bot, request)
    assert "Reason: the hedge rolled" in json.dumps(message["blocks"])
    [requested_event] = [e for e in bot.store.audit_events(request.id)
                         if e.event == "requested"]
    assert requested_event.detail == {"account": "desk-a", "desired": True,
                                      "reason": "the hedge rolled"}
    click(bot, BOB, request)
    assert finished(bot, request).status is Status.DONE
    [thread] = thread_of(bot, request)
    assert "Reason: the hedge rolled" in json.dumps(thread["blocks"])
    assert "*desk-a* (LIVE)" in thread["text"]
    assert "“the hedge rolled”" in bot.command("history").followup()


# --- the previous configuration -------------------------------------------------------------
def test_the_default_accounts_work_as_before(harness: Harness) -> None:
    bot = harness.start()  # OKX_API_* and OKX_DEMO_API_*, AUTOREPAY_ACCOUNTS unset
    assert bot.settings.accounts == (Account.LIVE, Account.DEMO)
    assert "waiting for approval" in bot.command("on").followup()
    assert "waiting for approval" in bot.command("demo on").followup()
    pending = bot.store.with_status(Status.PENDING)
    assert sorted((r.account.name, r.account.demo) for r in pending) == [
        ("demo", True), ("live", False)]
    text = bot.command("demo status").followup()
    assert text.startswith("[DEMO] ")
    assert re.search(r"Auto repay is \*OFF\* on (the )?\*demo\* \(DEMO\)", text), text
    text = bot.command("demo").followup()
    assert text.startswith("[DEMO] ") and "*demo* (DEMO)" in text
    live_request = next(r for r in pending if r.account.name == "live")
    click(bot, BOB, live_request)
    assert finished(bot, live_request).status is Status.DONE
    [write] = writes(bot.okx)
    assert signed_with(write) == OKX_ENV["OKX_API_KEY"]
    assert live(bot.okx).auto_repay is True and demo(bot.okx).auto_repay is False
    assert "Accounts: live, demo (DEMO). Without an account, `on`/`off` mean *live*." in \
        bot.command("help").ack_text


# --- reading accounts concurrently, and limits per uid --------------------------------------
def test_status_reads_the_accounts_at_the_same_time(nbot: Harness) -> None:
    nbot.okx.latency = 0.5  # every OKX answer takes half a second
    started = time.monotonic()
    reply = nbot.command("status")
    acked = time.monotonic() - started
    text = reply.followup()
    elapsed = time.monotonic() - started
    assert acked < 0.5  # the ack does not wait for OKX
    assert all(f"*{key.name}*" in text for key in KEYS), text
    assert len(nbot.slack.responses_to(reply.name)) == 1
    assert 0.5 <= elapsed < 1.2, f"3 reads of 0.5 s took {elapsed:.2f} s"
    arrived = sorted(r.arrived for r in reads(nbot.okx))
    assert len(arrived) == 3 and arrived[-1] - arrived[0] < 0.3, arrived


def test_one_slow_account_does_not_hold_up_the_others_in_status(nbot: Harness) -> None:
    nbot.runtime.service.overview_seconds = 0.5
    nbot.okx.fail_next("slow", seconds=5.0, path=CONFIG)  # the first read hangs
    started = time.monotonic()
    text = nbot.command("status").followup()
    assert time.monotonic() - started < 2.0
    assert text.count("auto repay *OFF*") == 2, text  # the two that answered
    assert "OKX did not answer within 0.5 s" in text
    assert "`/autorepay status " in text


SHARED_UID = "320000000099"
ONE = Key("one", "one-key-0004", "ONE-SECRET-never-shown", "ONE-PASS-never-shown", SHARED_UID)
TWO = Key("two", "two-key-0005", "TWO-SECRET-never-shown", "TWO-PASS-never-shown", SHARED_UID)


def test_accounts_of_one_uid_share_its_rate_limit(harness: Harness) -> None:
    """OKX counts 5 config reads / 2 s per uid: four `status` over both accounts (8
    reads) must spread over more than 2 s, by arrival at OKX, with no 50011."""
    add_keys(harness, (ONE, TWO))
    bot = harness.start(accounts=(ONE.account, TWO.account))
    replies = [bot.command("status") for _ in range(4)]
    for reply in replies:
        text = reply.followup()
        assert "*one* (LIVE): auto repay *OFF*" in text and "*two* (LIVE)" in text, text
    config = reads(bot.okx)
    assert [r.code for r in config].count("50011") == 0, [r.code for r in config]
    times = [r.arrived for r in config]
    assert max_in_any_window(times) <= 5, sorted(t - min(times) for t in times)
    assert len(config) == 8
    assert {signed_with(r) for r in config} == {ONE.api_key, TWO.api_key}


def max_in_any_window(times: list[float], period: float = 2.0) -> int:
    return max(sum(1 for t in times if start <= t < start + period) for start in times)
