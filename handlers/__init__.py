"""Slack at the edge: listeners, parsing and Block Kit messages."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.inflight import Inflight
from bot.metrics import Metrics
from bot.service import AutoRepay
from bot.worker import Worker
from handlers import actions, commands, home


def register(app: AsyncApp, service: AutoRepay, worker: Worker, inflight: Inflight, *,
             require_reason: bool = False, metrics: Metrics | None = None) -> None:
    metrics = metrics or Metrics()  # (counted, but nobody scrapes it)
    commands.register(app, service, worker, inflight, metrics, require_reason=require_reason)
    actions.register(app, service, inflight, metrics)
    home.register(app, service, inflight)
