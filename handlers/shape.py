"""A gate in front of Bolt: payloads of the two kinds this bot serves must have the
shape Slack sends, or they are refused before Bolt looks inside them.

Bolt builds its listener arguments eagerly (`body["actions"][0]`), even for its error
handler, so a signed but malformed payload would otherwise end as HTTP 500.
"""

from __future__ import annotations

from typing import Any


def problem(body: Any) -> str | None:
    """Why this payload is not one Slack would send us; None when it is fine."""
    if not isinstance(body, dict):
        return "payload is not an object"
    if "command" in body:
        return _missing(body, ("command", "user_id", "channel_id", "response_url"), str) or \
            _wrong_type(body, ("text",), str)
    if body.get("type") == "block_actions":
        return _block_actions(body)
    return None


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
        _wrong_type(body, ("container", "channel", "message", "team"), dict)


def _missing(body: dict[str, Any], keys: tuple[str, ...], kind: type) -> str | None:
    bad = [key for key in keys if not isinstance(body.get(key), kind)]
    return f"{', '.join(bad)} missing or not {kind.__name__}" if bad else None


def _wrong_type(body: dict[str, Any], keys: tuple[str, ...], kind: type) -> str | None:
    bad = [key for key in keys if key in body and not isinstance(body[key], kind)]
    return f"{', '.join(bad)} not {kind.__name__}" if bad else None
