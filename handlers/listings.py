"""Answers that list things: every account's state, pending requests, history.

One line per item; lines are packed into sections under Slack's 3 000-character limit
per text block, so 50 history entries still make one valid message.
"""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.approvals import ChangeRequest
from bot.readings import Drift, newest_first
from bot.service import AccountState, Cancelled, Listing, Overview
from handlers.blocks import (
    Message,
    account_name,
    closing_line,
    context,
    drift_line,
    message_link,
    mode_line,
    onoff,
    section,
    when,
    who,
)
from handlers.parsing import quote

SECTION_CHARS = 2900  # Slack refuses a section text over 3 000 characters
MAX_SECTIONS = 48  # and a message over 50 blocks (the title and a "more" line besides)
TEXT_CHARS = 3000  # the notification text: whole lines up to this


def overview(result: Overview) -> Message:
    if not result.states:
        return Message("There is no account you may see right now.")
    lines = []
    for state in result.states:
        if isinstance(state, AccountState):
            config = state.config
            lines.append(f"• {account_name(state.account)}: auto repay "
                         f"*{onoff(config.auto_repay)}* · {who(config.uid, config.label)} · "
                         f"{mode_line(config)}")
        else:
            lines.append(f"• {account_name(state.account)}: can't be read right now: "
                         f"{quote(state.reason, 300)}")
    return listing("Auto repay, account by account:", lines)


def pending(result: Listing, required: int, now: float) -> Message:
    where = ", ".join(account.name for account in result.accounts)
    if not result.requests:
        return Message(f"Nothing is waiting for approval (accounts: {where}).")
    lines = [pending_line(request, required, now) for request in result.requests]
    return listing(f"Waiting for approval ({len(lines)}):", lines)


def pending_line(request: ChangeRequest, required: int, now: float) -> str:
    link = (f" · <{message_link(request.approval_channel, request.approval_ts)}|open it>"
            if request.approval_ts else " · not posted yet")
    reason = f" · “{quote(request.reason, 200)}”" if request.reason else ""
    return (f"• `{request.id}` <@{request.requester}> asks *{onoff(request.desired)}* on "
            f"{account_name(request.account)} · {age(now - request.created_at)} ago · "
            f"expires {when(request.expires_at)} · approvals "
            f"{len(request.approvers)}/{required}{link}{reason}")


def history(result: Listing) -> Message:
    """Finished requests and changes made outside the bot, interleaved by time, newest
    first."""
    where = ", ".join(account.name for account in result.accounts)
    if not result.requests and not result.drifts:
        return Message(f"No finished requests yet (accounts: {where}).")
    lines = [drift_history_line(item, result.alert_channel) if isinstance(item, Drift)
             else history_line(item) for item in newest_first(result.requests, result.drifts)]
    what = "finished requests" if not result.drifts else "changes"
    return listing(f"The last {len(lines)} {what}, newest first:", lines)


def history_line(request: ChangeRequest) -> str:
    reason = f" · “{quote(request.reason, 200)}”" if request.reason else ""
    return (f"• {when(request.created_at)} <@{request.requester}> asked "
            f"*{onoff(request.desired)}* on {account_name(request.account)}: "
            f"{closing_line(request)}{reason}")


def drift_history_line(drift: Drift, channel: str) -> str:
    alert = (f" · <{message_link(channel, drift.alert_ts)}|the alert>"
             if drift.alert_ts and channel else "")
    return f"• {when(drift.at)} :rotating_light: {drift_line(drift)}{alert}"


def cancelled(result: Cancelled) -> Message:
    request = result.request
    if result.done:
        return Message(f"Cancelled `{request.id}` (auto repay *{onoff(request.desired)}* on "
                       f"{account_name(request.account)}). Nothing was changed.")
    return Message(f"`{request.id}` can't be cancelled: it is {request.status} "
                   f"already. {closing_line(request)}")


def listing(title: str, lines: list[str]) -> Message:
    """A title and lines, packed into sections; past Slack's 50 blocks, the rest is
    counted instead of shown (the text fallback holds whole lines only)."""
    chunks, shown = pack(lines, MAX_SECTIONS)
    blocks: list[Block] = [section(f"*{title}*"), *(section(c) for c in chunks)]
    if shown < len(lines):
        blocks.append(context(f"… and {len(lines) - shown} more not shown (Slack's limit); "
                              "ask for fewer, or for one account."))
    text = title
    for line in lines:
        if len(text) + len(line) + 1 > TEXT_CHARS:
            break
        text += "\n" + line
    return Message(text, blocks)


def pack(lines: list[str], max_sections: int) -> tuple[list[str], int]:
    """Lines joined into section texts of at most SECTION_CHARS (Slack's limit is 3 000),
    `max_sections` of them at most; and how many lines they hold."""
    chunks: list[str] = []
    shown = 0
    for line in lines:
        if chunks and len(chunks[-1]) + len(line) + 1 <= SECTION_CHARS:
            chunks[-1] += "\n" + line
        elif len(chunks) < max_sections:
            chunks.append(line[:SECTION_CHARS])
        else:
            break
        shown += 1
    return chunks, shown


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"
