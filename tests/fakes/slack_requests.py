"""Requests exactly as Slack sends them: signed form posts for slash commands,
`payload=` JSON for button clicks, built from the blocks the bot really posted, and JSON
Events API callbacks (App Home opened, the URL check)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from tests.fakes.slack_server import BOT_USER, TEAM

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"  # what the Events API posts


def signed_headers(secret: str, body: str, timestamp: int | None = None, *,
                   content_type: str = FORM) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature,
            "Content-Type": content_type}


def slash_command(text: str, user: str, channel: str, response_url: str) -> str:
    return urlencode({
        "token": "legacy-verification-token", "team_id": TEAM, "team_domain": "test",
        "channel_id": channel, "channel_name": "ops", "user_id": user, "user_name": user.lower(),
        "command": "/autorepay", "text": text, "api_app_id": "A0APP0001",
        "is_enterprise_install": "false", "response_url": response_url,
        "trigger_id": "1337.42.abcdef",
    })


def find_action(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return {"action_id": action_id, "block_id": block.get("block_id", ""),
                        "value": element.get("value"), "type": "button",
                        "text": element.get("text"), "action_ts": f"{time.time():.6f}"}
    raise AssertionError(f"no {action_id} button in the message")


def block_action(user: str, channel: str, ts: str, message: dict[str, Any], action_id: str,
                 response_url: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP0001", "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": "1337.43.abcdef", "team": {"id": TEAM, "domain": "test"},
        "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "ts": ts, "text": message.get("text", ""),
                    "blocks": message.get("blocks", []), "user": "UBOTUSER1"},
        "state": {"values": {}}, "response_url": response_url,
        "actions": [find_action(message.get("blocks", []), action_id)],
    }


def form_payload(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def app_home_opened(user: str, tab: str = "home") -> dict[str, Any]:
    """The event Slack sends when `user` opens the bot's Home tab (or Messages tab)."""
    return {"type": "app_home_opened", "user": user, "channel": "D0HOME001", "tab": tab,
            "event_ts": f"{time.time():.6f}"}


def event_callback(event: dict[str, Any]) -> str:
    """An Events API callback around `event`, as its JSON body."""
    return json.dumps({
        "token": "legacy-verification-token", "team_id": TEAM, "api_app_id": "A0APP0001",
        "event": event, "type": "event_callback", "event_id": f"Ev{time.time_ns()}",
        "event_time": int(time.time()), "is_ext_shared_channel": False,
        "authorizations": [{"enterprise_id": None, "team_id": TEAM, "user_id": BOT_USER,
                            "is_bot": True, "is_enterprise_install": False}],
    })


def url_verification(challenge: str) -> str:
    return json.dumps({"token": "legacy-verification-token", "challenge": challenge,
                       "type": "url_verification"})
