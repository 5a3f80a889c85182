"""App Home (SPEC §9): opening the bot's Home tab publishes, for that person, the
accounts they may see with their state, what waits for approval and what happened last.

Bolt acknowledges events before the listener runs, so reading OKX here (bounded, see
bot.home) never holds up Slack's 3 s.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block, DividerBlock, HeaderBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals import ChangeRequest
from bot.database_watch import unreachable
from bot.home import MAX_AGE, RECENT, AccountLine, Dashboard, Home, NoAccess
from bot.inflight import Inflight
from bot.readings import Drift, Source
from bot.service import AutoRepay
from handlers.blocks import (
    DATABASE_DOWN,
    account_name,
    closing_line,
    context,
    message_link,
    onoff,
    section,
    when,
    who,
)
from handlers.listings import age, pack, pending_line
from handlers.parsing import quote

log = logging.getLogger("handlers.home")

# A Home view holds at most 100 blocks: sections per list, the titles and notes besides.
ACCOUNT_SECTIONS = 30
PENDING_SECTIONS = 30
RECENT_SECTIONS = 10

NO_ROLE = ("You can't request or approve auto repay changes, so there is nothing to show "
           "you here. Ask whoever runs the bot if you should be able to.")
UNCHECKED = ("I couldn't check your membership of the Slack user groups allowed to see auto "
             "repay (Slack did not answer). Open this tab again in a moment.")
SOME_UNCHECKED = (":warning: Some accounts may be missing: your membership of the Slack user "
                  "groups allowed to see them couldn't be checked just now.")


def register(app: AsyncApp, service: AutoRepay, inflight: Inflight) -> None:
    home = Home(service)

    async def app_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") != "home":
            return  # the Messages tab opens with the same event
        user = str(event["user"])
        async with inflight.track():
            view = await home_view(home, user, service.rules.approvals_required,
                                   service.approval_channel)
            await publish(client, user, view)

    app.event("app_home_opened")(app_home_opened)


async def home_view(home: Home, user: str, required: int, approval_channel: str) -> View:
    try:
        shown = await home.gather(user)
    except Exception as exc:
        if not unreachable(exc):
            raise
        log.warning("home not gathered: the database can't be reached (%s) user=%s",
                    type(exc).__name__, user)
        return View(type="home", blocks=[section(DATABASE_DOWN.text)])
    if isinstance(shown, NoAccess):
        return View(type="home", blocks=[section(UNCHECKED if shown.unchecked else NO_ROLE)])
    return dashboard(shown, required, approval_channel)


async def publish(client: AsyncWebClient, user: str, view: View) -> None:
    try:
        await client.views_publish(user_id=user, view=view)
    except SlackApiError as exc:  # e.g. not_enabled: the manifest's home tab is off
        log.warning("home not published user=%s error=%s", user,
                    exc.response.get("error"))
    except (aiohttp.ClientError, TimeoutError) as exc:  # no answer: the next open retries
        log.warning("home not published user=%s error=%s", user, type(exc).__name__)


def dashboard(shown: Dashboard, required: int, approval_channel: str) -> View:
    now = shown.now
    blocks: list[Block] = [HeaderBlock(text="Auto repay")]
    if shown.unchecked:
        blocks.append(context(SOME_UNCHECKED))
    blocks += titled("Accounts", [account_line(line, now) for line in shown.accounts],
                     ACCOUNT_SECTIONS)
    blocks.append(DividerBlock())
    blocks += titled(f"Waiting for approval ({len(shown.pending)})",
                     [pending_line(r, required, now) for r in shown.pending],
                     PENDING_SECTIONS, empty="Nothing is waiting for approval.")
    blocks.append(DividerBlock())
    blocks += titled(f"The last {RECENT} changes and drift alerts, newest first",
                     [recent_line(item, approval_channel) for item in shown.recent],
                     RECENT_SECTIONS, empty="Nothing has happened yet.")
    blocks.append(context(f"As of {when(now)}. Open this tab again to refresh: readings "
                          f"older than {MAX_AGE:g} s are read again from OKX."))
    return View(type="home", blocks=blocks)


def account_line(line: AccountLine, now: float) -> str:
    """`• *desk-a* (LIVE): auto repay *ON* · OKX uid 4488… · read 12 s ago`."""
    head = f"• {account_name(line.account)}: auto repay"
    reading = line.reading
    if reading is None:
        why = quote(line.problem, 300) if line.problem else "not read yet."
        return f"{head} *unknown*: it couldn't be read just now: {why}"
    how = "read" if reading.source is Source.READ else "set by the bot"
    text = (f"{head} *{onoff(reading.auto_repay)}* · {who(reading.uid, '')} · {how} "
            f"{age(now - reading.read_at)} ago")
    if line.problem:
        text += f" · :warning: couldn't be refreshed just now: {quote(line.problem, 300)}"
    return text


def recent_line(item: ChangeRequest | Drift, approval_channel: str) -> str:
    if isinstance(item, Drift):
        return drift_line(item, approval_channel)
    link = (f" · <{message_link(item.approval_channel, item.approval_ts)}|open it>"
            if item.approval_ts else "")
    return (f"• {when(item.created_at)} <@{item.requester}> asked *{onoff(item.desired)}* on "
            f"{account_name(item.account)}: {closing_line(item)}{link}")


def drift_line(drift: Drift, approval_channel: str) -> str:
    link = (f" · <{message_link(approval_channel, drift.alert_ts)}|open the alert>"
            if drift.alert_ts and approval_channel else "")
    return (f"• {when(drift.at)} :rotating_light: Auto repay on {account_name(drift.account)} "
            f"({who(drift.uid, '')}) was changed outside the bot: now "
            f"*{onoff(drift.auto_repay)}*, was *{onoff(drift.was)}* at {when(drift.was_at)}"
            f"{link}")


def titled(title: str, lines: list[str], max_sections: int, *, empty: str = ""
           ) -> list[Block]:
    """A title and its lines packed into sections (Slack's 3 000 characters each); past
    `max_sections`, the rest is counted instead of shown."""
    chunks, shown = pack(lines, max_sections)
    blocks: list[Block] = [section(f"*{title}*"), *(section(c) for c in chunks)]
    if not lines and empty:
        blocks.append(context(empty))
    if shown < len(lines):
        blocks.append(context(f"… and {len(lines) - shown} more not shown (Slack's limit)."))
    return blocks
