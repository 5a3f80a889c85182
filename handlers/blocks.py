"""Messages for people, built with slack_sdk's Block Kit models.

Every function returns a Message: `text` (the notification / fallback) and `blocks`.
Anything that came from outside (labels, OKX messages) is escaped before it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.accounts import Account
from bot.approvals import ChangeRequest, Outcome, Status, Verdict
from bot.policy import Refusal
from bot.readings import Drift
from bot.service import AccountState, NoChangeNeeded, NotApplicable, Unavailable
from handlers.parsing import account_list, quote
from okx import AccountConfig
from okx.errors import outcome_uncertain

APPROVE = "autorepay_approve"
DENY = "autorepay_deny"

USAGE = (
    "*/autorepay* switches OKX auto repay after a second person approves.\n"
    "• `/autorepay on ACCOUNT` · `/autorepay off ACCOUNT` (or `ACCOUNT on`): request a "
    "change; add a reason after `--`, e.g. `/autorepay off desk-a -- closing the book`\n"
    "• `/autorepay status` (every account) · `/autorepay status ACCOUNT` (or just "
    "`ACCOUNT`): the state now\n"
    "• `/autorepay pending`: requests waiting for approval\n"
    "• `/autorepay history [ACCOUNT] [N]`: the last N finished requests and changes made "
    "outside the bot (10, at most 50)\n"
    "• `/autorepay cancel ID`: withdraw a pending request (its requester or an approver)\n"
    "• `/autorepay help`: this message"
)


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[Block] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        blocks = self.blocks or [section(self.text)]
        return {"text": self.text, "blocks": [block.to_dict() for block in blocks]}


def section(markdown: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=markdown))


def context(markdown: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=markdown)])


def onoff(value: bool | None) -> str:
    return "unknown" if value is None else ("ON" if value else "OFF")


def account_name(account: Account) -> str:
    """`*desk-a* (LIVE)`: the name, and whether it is real money, in capitals."""
    return f"*{account.name}* ({account.environment})"



def tag(account: Account) -> str:
    return "[DEMO] " if account.is_demo else ""


def who(config_uid: str, label: str) -> str:
    named = f", {quote(label, 60)}" if label else ""
    return f"OKX uid {quote(config_uid, 40)}{named}" if config_uid else "OKX account"


def names(users: tuple[str, ...]) -> str:
    return ", ".join(f"<@{user}>" for user in users) or "nobody"


# --- answers to the person typing the command --------------------------------------
def usage(accounts: tuple[Account, ...], problem: str = "", *,
          reason_required: bool = False) -> Message:
    single = [a for a in accounts if not a.demo]
    default = (f" Without an account, `on`/`off` mean *{single[0].name}*."
               if len(single) == 1 else "")
    required = " A reason is required." if reason_required else ""
    listing = f"Accounts: {account_list(accounts)}.{default}{required}"
    return Message((problem + "\n\n" if problem else "") + USAGE + "\n" + listing)


@cache
def usage_payload(accounts: tuple[Account, ...], reason_required: bool) -> dict[str, Any]:
    """The same every time: built once, so the ack goes out sooner."""
    return usage(accounts, reason_required=reason_required).payload()


@cache
def working_payload(account: Account) -> dict[str, Any]:
    return working(account).payload()


@cache
def looking_payload(accounts: bool) -> dict[str, Any]:
    return Message("Reading every account on OKX…" if accounts else "Looking…").payload()


def refused(refusal: Refusal) -> Message:
    return Message(f":no_entry: {refusal.reason}")


def working(account: Account) -> Message:
    return Message(f"{tag(account)}Checking {account_name(account)} on OKX…")


def status(state: AccountState) -> Message:
    config = state.config
    line = (f"{tag(state.account)}Auto repay is *{onoff(config.auto_repay)}* on "
            f"{account_name(state.account)} ({who(config.uid, config.label)}).")
    return Message(line, [section(line), context(mode_line(config))])


def mode_line(config: AccountConfig) -> str:
    borrowing = "borrowing enabled" if config.enable_spot_borrow else "borrowing disabled"
    applies = "" if config.supports_auto_repay else " Auto repay does not apply here."
    return f"Account mode: {config.mode_name}, {borrowing}.{applies}"


def unavailable(problem: Unavailable) -> Message:
    return Message(f":warning: {tag(problem.account)}{account_name(problem.account)} "
                   f"can't be used right now: {quote(problem.reason, 400)}")


def no_change(result: NoChangeNeeded | NotApplicable) -> Message:
    config = result.config
    if isinstance(result, NotApplicable):
        text = (f"{tag(result.account)}Nothing to approve: auto repay only applies to Spot "
                f"mode with borrowing enabled. {mode_line(config)}")
    else:
        text = (f"{tag(result.account)}Nothing to approve: auto repay is already "
                f"*{onoff(config.auto_repay)}* on {account_name(result.account)} "
                f"({who(config.uid, config.label)}).")
    return Message(text)


def message_link(channel: str, ts: str) -> str:
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def request_note(request: ChangeRequest) -> Message:
    link = message_link(request.approval_channel, request.approval_ts)
    return Message(
        f"{tag(request.account)}Your request `{request.id}` to switch auto repay "
        f"*{onoff(request.desired)}* on {account_name(request.account)} is waiting for "
        f"approval in <#{request.approval_channel}> (<{link}|open it>).")


# --- the approval message and its thread --------------------------------------------
def approval_request(request: ChangeRequest, current: bool | None,
                     mention: str = "") -> Message:
    """The message approvers act on: who asks what, on which account (name, LIVE/DEMO,
    uid), why, and the buttons. `mention`: the approvers, to notify them."""
    headline = (f"{tag(request.account)}<@{request.requester}> asks to switch auto repay "
                f"*{onoff(request.desired)}* on {account_name(request.account)}.")
    details = (f"{who(request.okx_uid, request.okx_label)} · currently *{onoff(current)}* · "
               f"request `{request.id}` · expires {when(request.expires_at)}")
    blocks: list[Block] = [section(headline), context(reason_line(request)), context(details)]
    if mention:
        blocks.append(context(f"Approvers: {mention}"))
    if request.approvers:
        blocks.append(context(f"Approved so far by {names(request.approvers)}"))
    uid = f", OKX uid {request.okx_uid}" if request.okx_uid else ""
    blocks.append(ActionsBlock(block_id=f"decide:{request.id}", elements=[
        ButtonElement(text="Approve", action_id=APPROVE, value=request.id, style="primary",
                      confirm=ConfirmObject(
                          title="Approve this change?",
                          text=f"Auto repay will be switched {onoff(request.desired)} on "
                               f"{request.account.name} ({request.account.environment}"
                               f"{quote(uid, 60)}).",
                          confirm="Approve", deny="Cancel")),
        ButtonElement(text="Deny", action_id=DENY, value=request.id, style="danger"),
    ]))
    text = headline + (f" {mention}" if mention else "")
    return Message(text, blocks)


def reason_line(request: ChangeRequest) -> str:
    return f"Reason: {quote(request.reason, 500)}" if request.reason else "No reason given."


def mentions(people: tuple[str, ...]) -> str:
    """Slack mentions: user groups as <!subteam^S…>, users as <@U…>."""
    return " ".join(f"<!subteam^{who}>" if who.startswith("S") else f"<@{who}>"
                    for who in people)


def approval_closed(request: ChangeRequest) -> Message:
    """The approval message once decided: no buttons, final status."""
    headline = (f"{tag(request.account)}<@{request.requester}> asked to switch auto repay "
                f"*{onoff(request.desired)}* on {account_name(request.account)}.")
    return Message(headline, [section(headline), context(reason_line(request)),
                              context(closing_line(request))])


def closing_line(request: ChangeRequest) -> str:
    lines = {
        Status.APPROVED: f":hourglass_flowing_sand: Approved by {names(request.approvers)}; "
                         "applying on OKX…",
        Status.DONE: f":white_check_mark: Done: auto repay is *{onoff(request.result)}*. "
                     f"Approved by {names(request.approvers)}.",
        Status.FAILED: f"{failure(request)} Approved by {names(request.approvers)}.",
        Status.DENIED: f":no_entry_sign: Denied by <@{request.decided_by}>.",
        Status.EXPIRED: ":zzz: Expired: nobody approved it in time.",
        Status.SUPERSEDED: f":leftwards_arrow_with_hook: Superseded by `{request.superseded_by}`"
                           " (a request for the opposite change).",
        Status.CANCELLED: f":heavy_multiplication_x: Cancelled by <@{request.decided_by}>.",
    }
    return lines.get(request.status, f"Status: {request.status}") + f" · `{request.id}`"


def thread_result(request: ChangeRequest, *, resumed: bool = False) -> Message:
    account = account_name(request.account)
    okx_id = who(request.okx_uid, request.okx_label)
    by = (f"Requested by <@{request.requester}>, approved by "
          f"{names(request.approvers)}.")
    wanted = onoff(request.desired)
    if request.status is Status.DONE:
        text = (f":white_check_mark: Auto repay is now *{onoff(request.result)}* on {account} "
                f"({okx_id}). {by}")
    elif request.status is Status.FAILED:
        text = f"{failed_in_thread(request, f'{account} ({okx_id})')} {by}"
    elif request.status is Status.DENIED:
        text = (f":no_entry_sign: <@{request.decided_by}> denied the request to switch auto "
                f"repay *{wanted}* on {account}. Nothing was changed.")
    elif request.status is Status.CANCELLED:
        text = (f":heavy_multiplication_x: <@{request.decided_by}> cancelled the request to "
                f"switch auto repay *{wanted}* on {account}. Nothing was changed.")
    else:
        text = (f":zzz: The request to switch auto repay *{wanted}* on {account} expired "
                "without approval. Nothing was changed.")
    note = (":arrows_counterclockwise: Resumed after an interruption (the bot restarted, or "
            "another replica took over). ") if resumed else ""
    line = tag(request.account) + note + text
    return Message(line, [section(line), context(f"{reason_line(request)} · `{request.id}`")])


def failed_in_thread(request: ChangeRequest, where: str) -> str:
    """The thread's account of a failure: the same story as `failure`, told in full."""
    wanted = onoff(request.desired)
    if outcome_unknown(request):
        return (f":warning: The outcome is unknown: auto repay may or may not have been "
                f"switched *{wanted}* on {where}. {why(request)} Please check it with "
                f"{status_command(request)} before asking again.")
    return (f":x: Auto repay could not be switched *{wanted}* on {where}: {why(request)} "
            "Nothing was changed.")


def failure(request: ChangeRequest) -> str:
    """A failed request in one line: unknown outcome or refusal, why, what to do."""
    if outcome_unknown(request):
        return (f":warning: The outcome is unknown: {why(request)} Check it with "
                f"{status_command(request)}.")
    return f":x: Not applied: {why(request)} Nothing was changed."


def outcome_unknown(request: ChangeRequest) -> bool:
    """Failed in a way that may have reached OKX all the same (an outage, a timeout)."""
    return outcome_uncertain(request.error_code)


def why(request: ChangeRequest) -> str:
    """The reason, in words with OKX's code (written by okx.errors or bot.service)."""
    return quote(request.error_text, 500)


def status_command(request: ChangeRequest) -> str:
    return f"`/autorepay status {request.account.name}`"


def requester_result(request: ChangeRequest) -> Message:
    """The same story as the thread and the approval message, in one line."""
    return Message(f"{tag(request.account)}Your request to switch auto repay "
                   f"*{onoff(request.desired)}* on {account_name(request.account)}: "
                   f"{closing_line(request)}")


# --- the drift watch ------------------------------------------------------------------
def drift_line(drift: Drift) -> str:
    """What changed outside the bot, in one line (the alert, history, App Home)."""
    uid = f", uid {quote(drift.uid, 40)}" if drift.uid else ""
    return (f"Auto repay on *{drift.account.name}* ({drift.account.environment}{uid}) was "
            f"changed outside the bot: now *{onoff(drift.auto_repay)}*, was "
            f"*{onoff(drift.was)}* at {when(drift.was_at)}")


def drift_alert(drift: Drift) -> Message:
    """The alert in the approval channel: a change nobody asked the bot for."""
    line = f":rotating_light: {tag(drift.account)}{drift_line(drift)}."
    advice = (f"Nobody asked for it through the bot; found {when(drift.at)}. Check who "
              f"changed it on OKX; to switch it back, `/autorepay {onoff(drift.was).lower()} "
              f"{drift.account.name}`.")
    return Message(line, [section(line), context(advice)])


SLACK_POST_PROBLEMS = {
    "not_in_channel": "the bot is not a member of that channel",
    "channel_not_found": "that channel does not exist or the bot can't see it",
    "is_archived": "that channel is archived",
}


def posted_late(request: ChangeRequest) -> Message:
    """The approval message is up after all (the command's reply said it wasn't yet)."""
    return Message(f"{tag(request.account)}Slack took it after all: "
                   + request_note(request).text)


def not_posted_yet(request: ChangeRequest) -> Message:
    return Message(
        f"{tag(request.account)}Your request `{request.id}` to switch auto repay "
        f"*{onoff(request.desired)}* on {account_name(request.account)} is stored, but "
        "Slack hasn't taken its approval message yet. The bot keeps trying and will tell "
        "you when it is up.")


DATABASE_DOWN = Message(
    ":warning: The bot can't reach its records just now, so nothing was done. Please try "
    "again in a minute; if it keeps happening, tell whoever runs the bot.")


def superseded(request: ChangeRequest) -> Message:
    return Message(
        f"{tag(request.account)}Your request `{request.id}` to switch auto repay "
        f"*{onoff(request.desired)}* on {account_name(request.account)} was superseded "
        f"by `{request.superseded_by}`, a request for the opposite change. Its buttons no "
        "longer do anything.")


def duplicate(request: ChangeRequest) -> Message:
    link = message_link(request.approval_channel, request.approval_ts)
    where = f" (<{link}|open it>)" if request.approval_ts else ""
    return Message(
        f"{tag(request.account)}The same change is already waiting for approval: request "
        f"`{request.id}` by <@{request.requester}> to switch auto repay "
        f"*{onoff(request.desired)}* on {account_name(request.account)}{where}. "
        "No second request was made.")


def busy(request: ChangeRequest) -> Message:
    return Message(
        f"{tag(request.account)}Not now: a change is being applied to "
        f"{account_name(request.account)} (`{request.id}`); try again in a moment.")


def approval_not_posted(request: ChangeRequest, error: str) -> Message:
    """For the requester; which setting to fix is in the log (bot.service.abandon)."""
    problem = SLACK_POST_PROBLEMS.get(error, "Slack refused the message")
    return Message(
        f":warning: {tag(request.account)}Your request could not be put up for approval: "
        f"the bot can't post in <#{request.approval_channel}> ({problem}; Slack error "
        f"`{quote(error)}`). Please ask whoever runs the bot to fix that, then ask again. "
        "Nothing was changed.")


def click_feedback(outcome: Outcome, required: int) -> Message | None:
    """What the person who clicked is told privately; None when the thread says it all."""
    request = outcome.request
    missing = required - len(request.approvers)
    texts = {
        Verdict.RECORDED: f"Your approval is recorded; {missing} more needed.",
        Verdict.SELF_APPROVAL: "You can't approve your own request: another approver has to.",
        Verdict.ALREADY_VOTED: f"You have already approved this request; {missing} more "
                               "needed.",
        Verdict.NOT_PENDING: f"This request is already {request.status}; nothing to do.",
        Verdict.EXPIRED: "This request has expired and can no longer be approved.",
    }
    text = texts.get(outcome.verdict)
    return Message(text) if text else None


def when(epoch: float) -> str:
    """A Slack date token: each reader sees their own time zone; the time in UTC where
    it can't be rendered (some clients, notifications)."""
    seconds = int(epoch)
    fallback = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{seconds}^{{date_short_pretty}} at {{time}}|{fallback}>"
