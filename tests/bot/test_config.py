"""Settings from the environment: every mistake named, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret-signing",
    "AUTOREPAY_APPROVAL_CHANNEL": "C0APPROVE", "AUTOREPAY_REQUESTERS": "U0ALICE01, S0TRADERS",
    "AUTOREPAY_APPROVERS": "U0BOB0001",
}


def test_defaults() -> None:
    settings = load_settings(GOOD)
    assert settings.requesters == ("U0ALICE01", "S0TRADERS")
    assert settings.approvals_required == 1 and settings.approval_ttl == 900
    assert settings.allow_self_approval is False
    assert settings.db_path == Path("autorepay.db") and settings.port == 3000
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.okx_base_url == "https://www.okx.com"
    assert not settings.socket_mode
    assert "s3cret-signing" not in repr(settings) and "xoxb-1" not in repr(settings)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"AUTOREPAY_APPROVAL_CHANNEL": "#approvals",
                       "AUTOREPAY_REQUESTERS": "alice,U0ALICE01",
                       "AUTOREPAY_APPROVALS_REQUIRED": "two",
                       "AUTOREPAY_DB": str(tmp_path / "missing" / "x.db")})
    problems = caught.value.problems
    text = "\n".join(problems)
    for expected in ("SLACK_BOT_TOKEN is not set", "SLACK_SIGNING_SECRET is not set",
                     "'#approvals' is not a channel ID", "AUTOREPAY_REQUESTERS has 'alice'",
                     "AUTOREPAY_APPROVERS is not set", "AUTOREPAY_APPROVALS_REQUIRED='two'",
                     "does not exist"):
        assert expected in text
    assert all("\n" not in problem for problem in problems)


def test_socket_mode_needs_no_signing_secret() -> None:
    env = {**GOOD, "SLACK_APP_TOKEN": "xapp-1"}
    del env["SLACK_SIGNING_SECRET"]
    assert load_settings(env).socket_mode


def test_port_and_urls_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "PORT": "70000", "OKX_BASE_URL": "www.okx.com",
                       "SLACK_API_URL": "slack.com/api"})
    text = "\n".join(caught.value.problems)
    assert "PORT='70000' must be a whole number from 1 to 65535" in text
    assert "OKX_BASE_URL='www.okx.com' must be a URL" in text
    assert "SLACK_API_URL='slack.com/api' must be a URL" in text


def test_wrong_token_kinds() -> None:
    with pytest.raises(ConfigError, match="xoxb-"):
        load_settings({**GOOD, "SLACK_BOT_TOKEN": "xapp-oops"})
