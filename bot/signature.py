"""Slack's request signature, checked on the raw bytes before anything parses them.

https://api.slack.com/authentication/verifying-requests-from-slack: `X-Slack-Signature`
is `v0=` + hex(HMAC-SHA256(signing secret, b"v0:" + timestamp + b":" + body)), and
`X-Slack-Request-Timestamp` must be within five minutes of now. Any header that is
missing, not ASCII or not a plain number simply fails: this never raises.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

MAX_AGE_SECONDS = 300
_MAX_TIMESTAMP_DIGITS = 12


class SlackSignature:
    def __init__(self, signing_secret: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = signing_secret.encode()
        self._clock = clock

    def __repr__(self) -> str:
        return "SlackSignature(<secret hidden>)"

    def problem(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Why the request is not signed by Slack (a few words for the log); None if it is."""
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not timestamp or not signature:
            return "signature headers missing"
        if not (timestamp.isascii() and timestamp.isdigit()) or \
                len(timestamp) > _MAX_TIMESTAMP_DIGITS:
            return "malformed timestamp"
        if abs(self._clock() - int(timestamp)) > MAX_AGE_SECONDS:
            return "stale timestamp"
        expected = "v0=" + hmac.new(self._key, b"v0:" + timestamp.encode() + b":" + body,
                                    hashlib.sha256).hexdigest()
        if not signature.isascii() or not hmac.compare_digest(expected, signature):
            return "bad signature"
        return None
