"""SPEC §8 against the bot's real HTTP endpoint: every request is verified, whatever else
is configured; bad bodies never get a 5xx; a refused request leaves one short log line."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import parse_qsl, urlencode

import pytest

from handlers.blocks import APPROVE
from tests.bot.conftest import ALICE, APPROVALS, BOB, OPS, Harness, live
from tests.fakes.slack_requests import block_action, form_payload, signed_headers, slash_command

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def deep(levels: int) -> str:
    return "payload=" + "[" * levels + "]" * levels


@pytest.fixture
def http_forced(harness: Harness) -> Harness:
    """`--http` with SLACK_APP_TOKEN also set: the configuration that once skipped checks."""
    return harness.start(slack_app_token=harness.slack.app_token, force_http=True)


def test_http_with_an_app_token_still_verifies_every_request(http_forced: Harness) -> None:
    bot = http_forced
    command = slash_command("on", ALICE, OPS, bot.slack.response_url("x"))
    assert bot.http.post(bot.events_url, content=command, headers=FORM).status_code == 401
    assert bot.post(command, secret="not-the-signing-secret").status_code == 401
    bot.command("on").followup()  # a signed request still works: one approval message
    ts, message = bot.approval_message()
    click = form_payload(block_action(BOB, APPROVALS, ts, message, APPROVE,
                                      bot.slack.response_url("c")))
    assert bot.http.post(bot.events_url, content=click, headers=FORM).status_code == 401
    assert not bot.okx.codes() and live(bot.okx).auto_repay is False


@pytest.mark.parametrize("body, headers", [
    (b"text=on&user_id=\xff\xfe", FORM),
    (b"text=on", {"Content-Type": "application/x-www-form-urlencoded; charset=nope"}),
    (b"text=on", {**FORM, "X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}),
    (b"text=on", {**FORM, "X-Slack-Request-Timestamp": "\u0661\u0662".encode(),
                  "X-Slack-Signature": "v0=00"}),
    (b"text=on", {**FORM, "X-Slack-Request-Timestamp": "9" * 400,
                  "X-Slack-Signature": "v0=00"}),
    (deep(100_000).encode(), FORM),
    (b'{"type": "url_verification", "challenge": "x"}', {"Content-Type": "application/json"}),
], ids=["not-utf8", "odd-charset", "timestamp-abc", "timestamp-arabic-digits",
        "timestamp-huge", "deep-nesting", "json"])
def test_unsigned_odd_bodies_get_401_never_5xx(bot: Harness, body: bytes,
                                               headers: dict[str, str | bytes],
                                               caplog: pytest.LogCaptureFixture) -> None:
    response = bot.http.post(bot.events_url, content=body, headers=headers)
    assert response.status_code == 401
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def signed_form(**fields: str) -> bytes:
    command = dict(parse_qsl(slash_command("on", ALICE, OPS, "https://hooks.example/x")))
    return urlencode({**command, **fields}).encode()


def signed_payload(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.mark.parametrize("body", [
    b"text=on&user_id=\xff\xfe", deep(100_000).encode(), b"payload=%7B%22type%22%3A",
    signed_payload({"type": "view_submission", "view": "x", "user": {"id": ALICE}}),
    signed_payload({"type": "view_closed", "view": [1]}),
    signed_payload({"type": "block_suggestion", "action_id": {"a": 1}}),
    signed_payload({"type": "workflow_step_edit", "callback_id": 5}),
    json.dumps({"type": "event_callback", "event": [1, 2]}).encode(),
    signed_form(response_url="file:///etc/passwd"), signed_form(response_url="http://[::1"),
    signed_form(response_url=""), signed_form(user_id="U0ALICE01\nINFO forged line"),
], ids=["not-utf8", "deep-nesting", "truncated-json", "view-submission", "view-closed",
        "block-suggestion", "workflow-step", "event-not-object", "file-url", "broken-url",
        "empty-url", "newline-in-user"])
def test_signed_but_malformed_bodies_get_400(bot: Harness, body: bytes,
                                              caplog: pytest.LogCaptureFixture) -> None:
    timestamp = str(int(time.time()))
    headers = signed_headers_bytes(body, timestamp)
    assert bot.http.post(bot.events_url, content=body, headers=headers).status_code == 400
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def signed_headers_bytes(body: bytes, timestamp: str) -> dict[str, str]:
    import hashlib
    import hmac

    from tests.bot.conftest import SIGNING_SECRET
    mac = hmac.new(SIGNING_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body,
                   hashlib.sha256).hexdigest()
    return {**FORM, "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=" + mac}


RAW_REQUESTS = {
    "http10-no-length": b"POST /slack/events HTTP/1.0\r\nContent-Type: application/x-www-form-"
                        b"urlencoded\r\n\r\ntoken=x&response_url=https%3A%2F%2FSECRET-URL",
    "two-lengths": b"POST /slack/events HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n"
                   b"Content-Length: 7\r\n\r\nSECRET-URL",
    "chunked-and-length": b"POST /slack/events HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n5\r\nSECRET-URL\r\n0\r\n\r\n",
    "negative-length": b"POST /slack/events HTTP/1.1\r\nHost: b\r\nContent-Length: -5\r\n\r\n"
                       b"SECRET-URL",
    "folded-header": b"POST /slack/events HTTP/1.1\r\nHost: b\r\nX-A: a\r\n SECRET-URL\r\n"
                     b"Content-Length: 0\r\n\r\n",
    "deflate-garbage": b"POST /slack/events HTTP/1.1\r\nHost: b\r\nContent-Encoding: deflate\r\n"
                       b"Content-Length: 10\r\n\r\nSECRET-URL",
    "brotli": b"POST /slack/events HTTP/1.1\r\nHost: b\r\nContent-Encoding: br\r\n"
              b"Content-Length: 10\r\n\r\nSECRET-URL",
}


@pytest.mark.parametrize("raw", RAW_REQUESTS.values(), ids=RAW_REQUESTS.keys())
def test_broken_http_gets_4xx_and_one_quiet_line(bot: Harness, raw: bytes,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    assert bot.server is not None
    with socket.create_connection(("127.0.0.1", bot.server.port), timeout=5) as sock:
        sock.sendall(raw)
        answer = sock.recv(4096)
    assert answer.split(b" ")[1].startswith(b"4"), answer
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors and "SECRET-URL" not in caplog.text


def test_refused_requests_leave_one_short_line_and_no_body(
        bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    big = ("text=" + "A" * 900_000).encode()
    for _ in range(5):
        assert bot.http.post(bot.events_url, content=big, headers=FORM).status_code == 401
    # A genuine request Slack signed long ago (clock skew, replay): refused, and its
    # response_url and trigger_id stay out of the log.
    stale = slash_command("on", ALICE, OPS, bot.slack.response_url("stale"))
    assert bot.post(stale, timestamp=int(time.time()) - 3600).status_code == 401
    logged = [r.getMessage() for r in caplog.records  # the bot's own, not the test client's
              if not r.name.startswith(("httpx", "httpcore"))]
    assert len(logged) == 6 and all(len(line) < 200 for line in logged), logged
    text = caplog.text
    assert "AAAA" not in text and "/response/stale" not in text and "1337.42" not in text


def test_bodies_over_one_mebibyte_get_413(bot: Harness) -> None:
    body = "text=" + "A" * (1 << 20)
    response = bot.http.post(bot.events_url, content=body,
                             headers=signed_headers("whatever", body))
    assert response.status_code == 413
    chunked = bot.http.post(bot.events_url, content=iter([body.encode()]), headers=FORM)
    assert chunked.status_code == 413


def test_other_paths_and_methods_are_not_served(bot: Harness) -> None:
    assert bot.http.get(bot.events_url).status_code == 405
    assert bot.http.post(bot.server.url + "/admin", content=b"x").status_code == 404  # type: ignore[union-attr]


def test_the_signed_json_events_path_still_works(bot: Harness) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"})
    response = bot.post(body)
    assert response.status_code == 200 and "c-123" in response.text
