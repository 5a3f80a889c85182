"""AUTOREPAY_LOG_FORMAT=json (SPEC §9): a real `python -m bot` at DEBUG, a command and
its approval, and every line on stderr is one JSON object with the event's fields as
keys; in either format no secret, response_url or trigger_id is ever written."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.logs import HIDDEN, TEXT_FORMAT, JsonFormatter, Redactor, TextFormatter, fields
from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, OPS, SECRETS, SIGNING_SECRET
from tests.bot.process import Lines, bot_env, bot_process, end, free_port, wait_ready
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_requests import block_action, form_payload, signed_headers, slash_command
from tests.fakes.slack_server import FakeSlack

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TRIGGER_IDS = ("1337.42.abcdef", "1337.43.abcdef")  # what slack_requests sends


@pytest.fixture
def json_bot(slack: FakeSlack, okx: FakeOkx, tmp_path: Path
             ) -> Iterator[tuple[subprocess.Popen[str], Lines, int]]:
    port = free_port()
    env = {**bot_env(slack, okx, port), "AUTOREPAY_LOG_FORMAT": "json",
           "AUTOREPAY_LOG_LEVEL": "DEBUG"}
    process = bot_process([], env, tmp_path)
    lines = Lines(process)
    try:
        wait_ready(process, port, lines=lines)
        yield process, lines, port
    finally:
        if process.stdout is not None and not process.stdout.closed:  # (not ended yet)
            end(process, lines)


def post(port: int, body: str) -> None:
    httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body,
               headers=signed_headers(SIGNING_SECRET, body)).raise_for_status()


def test_every_line_is_json_with_the_events_fields(
        json_bot: tuple[subprocess.Popen[str], Lines, int], slack: FakeSlack) -> None:
    process, lines, port = json_bot
    post(port, slash_command("on", ALICE, OPS, slack.response_url("c1")))
    [call] = slack.wait_for(lambda: [c for c in slack.called("chat.postMessage")
                                     if c.args.get("channel") == APPROVALS])
    ts = str(call.answer["ts"])
    slack.wait_for(lambda: slack.responses_to("c1"))
    post(port, form_payload(block_action(BOB, APPROVALS, ts, call.args, APPROVE,
                                         slack.response_url("c2"))))
    slack.wait_for(lambda: slack.thread(ts))
    lines.wait_for('"executed')
    code, _ = end(process, lines)
    assert code == 0
    entries = [json.loads(line) for line in lines.lines]  # every line, or this fails
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert ISO_UTC.fullmatch(entry["time"]), entry["time"]
    levels = {entry["level"] for entry in entries}
    assert "DEBUG" in levels and "INFO" in levels
    stored = event(entries, "request stored")
    assert stored["requester"] == ALICE and stored["account"] == "live"
    assert re.fullmatch(r"ar-[0-9a-f]{8}", stored["id"])
    clicked = event(entries, "click")
    assert (clicked["id"], clicked["user"], clicked["verdict"]) == (stored["id"], BOB, "approved")
    assert event(entries, "executed")["status"] == "done"
    said = "\n".join(lines.lines)
    for hidden in [*SECRETS, slack.response_url("c1"), slack.response_url("c2"), *TRIGGER_IDS]:
        assert hidden not in said


def event(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [entry for entry in entries if entry.get("event") == name]
    assert found, f"no {name!r} line"
    return found[0]


# --- the formatter and the redaction, one record at a time ------------------------------
def formatted(formatter: logging.Formatter, redactor: Redactor, message: str, *args: Any,
              **options: Any) -> str:
    record = logging.getLogger("bot.test").makeRecord(
        "bot.test", logging.WARNING, __file__, 1, message, args, None, **options)
    redactor.filter(record)
    return formatter.format(record)


def test_key_value_pairs_become_fields_quoted_ones_unquoted() -> None:
    assert fields("write failed account=live code=50113 msg='Invalid Sign, see docs' "
                  "hint=\"set OKX_API_SECRET\"") == {
        "event": "write failed", "account": "live", "code": "50113",
        "msg": "Invalid Sign, see docs", "hint": "set OKX_API_SECRET"}
    assert fields("ready mode=http") == {"event": "ready", "mode": "http"}
    assert fields("listening on http://127.0.0.1:3000") == {}


def test_a_text_record_is_one_line_whatever_its_message_holds() -> None:
    """A line break in a message (a migration's note, user text) can't start what looks
    like a record of its own."""
    record = logging.makeLogRecord({"name": "bot", "levelname": "INFO", "levelno": 20,
                                    "msg": "reason=%s",
                                    "args": ("a\n2026 ERROR x\r\nb\rc\u2028d\x85e",)})
    [line] = TextFormatter(TEXT_FORMAT).format(record).splitlines()
    assert line.endswith("INFO bot reason=a ⏎ 2026 ERROR x ⏎ b ⏎ c ⏎ d ⏎ e")


def test_extra_fields_and_exceptions_are_keys_the_traceback_only_with_exc_info() -> None:
    redactor = Redactor(["s3cret-value"])
    plain = json.loads(formatted(JsonFormatter(redactor), redactor, "tick n=%d", 3,
                                 extra={"account": "desk-a"}))
    assert plain["n"] == "3" and plain["account"] == "desk-a"
    assert "error" not in plain and "traceback" not in plain
    try:
        raise ValueError("bad s3cret-value")
    except ValueError:
        record = logging.getLogger("bot.test").makeRecord(
            "bot.test", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info())
    redactor.filter(record)
    entry = json.loads(JsonFormatter(redactor).format(record))
    assert entry["error"] == f"ValueError: bad {HIDDEN}"
    assert "Traceback" in entry["traceback"] and "s3cret-value" not in entry["traceback"]


@pytest.mark.parametrize("text_format", [True, False])
def test_secrets_response_urls_and_trigger_ids_are_hidden(text_format: bool) -> None:
    secret = 'pa"ss/wo rd'  # escaped in JSON and in reprs, encoded in URLs
    redactor = Redactor([secret, "xoxb-1-2-3", "abc"])
    formatter = logging.Formatter("%(message)s") if text_format else JsonFormatter(redactor)
    leaks = [
        ("token=%s", ("xoxb-1-2-3",)),
        ("dsn=%r", (f"postgresql://bot:{secret}@db/x",)),
        ("url=%s", ("postgresql://bot:pa%22ss%2Fwo%20rd@db",)),
        ("posting to https://hooks.slack.com/commands/T0/123/abc now", ()),
        ("body %s", ('{"response_url": "https:\\/\\/hooks.slack.com\\/actions\\/T0\\/9"}',)),
        ("form %s", ("trigger_id=1337.42.abcdef&response_url=http%3A%2F%2Fx%2Fy",)),
        ("payload %r", ({"trigger_id": "1337.43.abcdef"},)),
    ]
    for message, args in leaks:
        line = formatted(formatter, redactor, message, *args)
        for hidden in ("xoxb-1-2-3", secret, "pa%22ss", "hooks.slack.com", "1337.4",
                       "http%3A%2F%2Fx"):
            assert hidden not in line, (message, line)
        assert HIDDEN in line
    # too short to be a secret: ordinary words stay readable
    assert "abc" in formatted(formatter, redactor, "abc")
