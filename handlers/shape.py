"""A gate in front of Bolt: payloads of the two kinds this bot serves must have the
shape Slack sends, or they are refused before Bolt looks inside them.

Bolt builds its listener arguments eagerly (`body["actions"][0]`), even for its error
handler, so a signed but malformed payload would otherwise end as HTTP 500.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

SLACK_ID = re.compile(r"[A-Z0-9]{2,40}")  # user, channel, team IDs: also keeps logs one line


def problem(body: Any) -> str | None:
    """Why this payload is not one Slack would send us; None when it is fine.

    Only the kinds this bot serves pass: slash commands, button clicks, Events API
    callbacks (App Home opened) and Slack's URL and SSL checks. Anything else is refused,
    not guessed at.
    """
    if not isinstance(body, dict):
        return "payload is not an object"
    if "command" in body:
        return _missing(body, ("command", "user_id", "channel_id", "response_url"), str) or \
            _wrong_type(body, ("text",), str) or \
            _not_ids(body["user_id"], body["channel_id"]) or _not_url(body["response_url"])
    kind = body.get("type")
    if kind == "block_actions":
        return _block_actions(body)
    if kind == "event_callback":
        return _event(body.get("event"))
    if kind == "url_verification":  # Bolt answers with the challenge it was sent
        return _missing(body, ("challenge",), str)
    if "ssl_check" in body:
        return None
    return "not a kind of payload this bot serves"


def _event(event: Any) -> str | None:
    """An Events API callback; App Home's own fields are checked, because the listener
    publishes to `user` and reads `tab`."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "event missing"
    if event["type"] != "app_home_opened":
        return None
    return _missing(event, ("user",), str) or _wrong_type(event, ("tab", "channel"), str) \
        or _not_ids(event["user"])


def _block_actions(body: dict[str, Any]) -> str | None:
    user, actions = body.get("user"), body.get("actions")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        return "user.id missing"
    if not isinstance(actions, list) or not actions:
        return "actions missing"
    for action in actions:
        if not isinstance(action, dict) or _missing(action, ("action_id",), str) or \
                _wrong_type(action, ("value", "block_id"), str):
            return "malformed action"
    return _missing(body, ("response_url",), str) or \
        _wrong_type(body, ("container", "channel", "message", "team"), dict) or \
        _not_ids(user["id"]) or _not_url(body["response_url"])


def _not_ids(*values: str) -> str | None:
    bad = [value for value in values if not SLACK_ID.fullmatch(value)]
    return "malformed Slack ID" if bad else None


def _not_url(value: str) -> str | None:
    try:
        url = urlsplit(value)
    except ValueError:
        return "malformed response_url"
    ok = url.scheme in ("https", "http") and bool(url.hostname)
    return None if ok else "malformed response_url"


def _missing(body: dict[str, Any], keys: tuple[str, ...], kind: type) -> str | None:
    bad = [key for key in keys if not isinstance(body.get(key), kind)]
    return f"{', '.join(bad)} missing or not {kind.__name__}" if bad else None


def _wrong_type(body: dict[str, Any], keys: tuple[str, ...], kind: type) -> str | None:
    bad = [key for key in keys if key in body and not isinstance(body[key], kind)]
    return f"{', '.join(bad)} not {kind.__name__}" if bad else None
