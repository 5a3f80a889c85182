"""Slack at the edge: listeners, parsing and Block Kit messages."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.inflight import Inflight
from bot.service import AutoRepay
from handlers import actions, commands
from handlers.announce import Announcer


def register(app: AsyncApp, service: AutoRepay, announcer: Announcer,
             inflight: Inflight) -> None:
    commands.register(app, service, announcer, inflight)
    actions.register(app, service, announcer, inflight)
