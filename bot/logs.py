"""The bot's log on stderr (SPEC §9): text or JSON lines, never a secret.

- `configure()` runs first thing, before the settings are read: text lines.
- `apply()` runs once they are: AUTOREPAY_LOG_FORMAT=json makes each record one JSON
  object (time, level, logger, message, and the event's fields as keys), and either
  way every configured secret, Slack response_url and trigger_id becomes ***.

The bot's lines are written "event key=value key=value …" (values may be quoted reprs,
msg='…'): in JSON those pairs become keys of their own, as do fields passed with
`extra=`. Only the handler made here is changed: a handler someone else installed (a
test's log capture) keeps its own format and sees what was logged.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

from bot import credentials
from bot.config import Settings
from bot.credentials import CredentialsError

HIDDEN = "***"
HANDLER = "autorepay"  # the name of the stderr handler configure() installs
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Whatever a reader may take for the end of a line (str.splitlines' list).
LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
MIN_SECRET = 4  # shorter values would blank out ordinary words; no real secret is so short
FIELD = re.compile(r"(?:^|(?<=\s))([a-z_][a-z0-9_]*)="
                   r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;]+)")
# Slack's response URLs (also JSON- or URL-escaped), and whatever follows the names of
# fields that carry one, or a trigger_id, in key=value, JSON, repr or form encoding.
SLACK_URL = re.compile(r"(?:https?:|https?%3A)?(?:/|\\/|%2F){2}hooks\.slack\.com[^\s'\"<>&,)]*",
                       re.IGNORECASE)
NAMED = re.compile(r"(response_url|trigger_id)(\\?['\"]?\s*[:=]\s*\\?['\"]?)([^\s'\"\\&,;}]+)")
# What every LogRecord has; anything else on a record came from `extra=`.
STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
RESERVED = ("time", "level", "logger", "message", "error", "traceback")


# --- redaction ------------------------------------------------------------------------
class Redactor(logging.Filter):
    """Rewrites each record before any formatter sees it: its message, its `extra=`
    strings and its traceback, with secrets, response URLs and trigger IDs as ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        forms = {form for secret in secrets if len(secret) >= MIN_SECRET
                 for form in spellings(secret)}
        self._secrets = sorted(forms, key=len, reverse=True)  # the longest first

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, HIDDEN)
        text = SLACK_URL.sub(HIDDEN, text)
        return NAMED.sub(lambda m: m.group(1) + m.group(2) + HIDDEN, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.text(record.stack_info)
        for key, value in extras(record).items():
            if isinstance(value, str):
                setattr(record, key, self.text(value))
        return True


def spellings(secret: str) -> set[str]:
    """A secret as it may appear in a line: as is, URL-encoded, escaped in a repr or
    in JSON."""
    return {secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1],
            json.dumps(secret)[1:-1]}


def secrets(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Every secret the bot is configured with: Slack's tokens and signing secret, the
    database password, each account's OKX secret and passphrase."""
    found = [settings.slack_bot_token, settings.slack_app_token,
             settings.slack_signing_secret, *settings.database.secrets]
    for account in settings.accounts:
        try:
            creds = credentials.load(account, environ)
        except CredentialsError:
            continue  # nothing to hide; start-up reports what is missing
        found += [creds.secret, creds.passphrase]
    return [secret for secret in found if secret]


# --- JSON -----------------------------------------------------------------------------
class TextFormatter(logging.Formatter):
    """`time level logger message`, one line per record (a traceback follows on lines
    of its own): a message's own line breaks (alembic's revision notes, user text) are
    written as ⏎, so every line that starts with a time is a record."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return LINE_BREAK.sub(" ⏎ ", super().formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {"time": iso_time(record.created), "level": record.levelname,
                                 "logger": record.name, "message": message}
        for key, value in {**fields(message), **extras(record)}.items():
            entry.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = self._redactor.text(f"{type(error).__name__}: {error}")
            entry["traceback"] = record.exc_text or self._redactor.text(
                self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def iso_time(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z: 2024-05-01T12:00:00.123Z."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fields(message: str) -> dict[str, str]:
    """The key=value pairs of an "event key=value …" line, and the event itself (the
    words before the first pair); {} for a line without pairs."""
    found = {match.group(1): unquote(match.group(2)) for match in FIELD.finditer(message)}
    if not found:
        return {}
    first = FIELD.search(message)
    assert first is not None
    event = message[:first.start()].strip().rstrip(":")
    return {"event": event, **found} if event else found


def unquote(value: str) -> str:
    if value[:1] in ("'", '"'):
        try:
            return str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            return value[1:-1]
    return value


def extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items()
            if key not in STANDARD and not key.startswith("_")}


# --- set-up ---------------------------------------------------------------------------
def configure() -> None:
    """Text lines on stderr at INFO, until `apply()`; nothing changes when the root
    logger has handlers already (as logging.basicConfig)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.set_name(HANDLER)
    handler.setFormatter(TextFormatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # warnings become log records: JSON lines too


def apply(log_format: str, hidden: Iterable[str]) -> None:
    """The format the settings ask for, and the redaction of `hidden` (see secrets())."""
    handler = next((h for h in logging.getLogger().handlers if h.get_name() == HANDLER),
                   None)
    if handler is None:
        return
    for old in [f for f in handler.filters if isinstance(f, Redactor)]:
        handler.removeFilter(old)
    redactor = Redactor(hidden)
    handler.addFilter(redactor)  # after cap_library_logs' filter: dropped records cost nothing
    handler.setFormatter(JsonFormatter(redactor) if log_format == "json"
                         else TextFormatter(TEXT_FORMAT))
