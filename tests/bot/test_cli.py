"""`python -m bot` as a person runs it: real processes, real signals."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.bot.conftest import APPROVALS, OKX_ENV
from tests.bot.process import bot_env, bot_process, free_port, wait_ready
from tests.fakes.okx_server import FakeOkx
from tests.fakes.slack_server import FakeSlack


def test_config_mistakes_exit_2_with_one_line_each(tmp_path: Path) -> None:
    process = bot_process([], {"AUTOREPAY_APPROVAL_CHANNEL": "approvals"}, tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    lines = err.strip().splitlines()
    assert all(line.startswith("autorepay: config error: ") for line in lines)
    assert any("SLACK_BOT_TOKEN" in line for line in lines)
    assert any("'approvals' is not a channel ID" in line for line in lines)


def test_unusable_database_is_a_config_error(tmp_path: Path, slack: FakeSlack,
                                             okx: FakeOkx) -> None:
    (tmp_path / "notes.txt").write_text("this is not a database, just text " * 100)
    env = {**bot_env(slack, okx, free_port()), "AUTOREPAY_DB": "notes.txt"}
    process = bot_process([], env, tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.strip().splitlines() == [
        "autorepay: config error: AUTOREPAY_DB='notes.txt' cannot be used: "
        "file is not a database"]


def test_run_command_starts_from_dotenv_serves_healthz_and_stops_on_sigterm(
        tmp_path: Path, slack: FakeSlack, okx: FakeOkx) -> None:
    port = free_port()
    dotenv = {
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": "from-dotenv",
        "SLACK_API_URL": slack.api_url, "AUTOREPAY_APPROVAL_CHANNEL": APPROVALS,
        "AUTOREPAY_REQUESTERS": "U0ALICE01", "AUTOREPAY_APPROVERS": "U0BOB0001",
        "OKX_BASE_URL": okx.url, "PORT": "1", "AUTOREPAY_HOST": "127.0.0.1", **OKX_ENV,
    }
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    process = bot_process([], {"PORT": str(port)}, tmp_path)  # the real environment wins
    try:
        wait_ready(process, port)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0
    assert (tmp_path / "autorepay.db").exists()
    for secret in ("from-dotenv", OKX_ENV["OKX_API_SECRET"], OKX_ENV["OKX_API_PASSPHRASE"]):
        assert secret not in err


def test_socket_mode_process_connects_and_stops_on_sigterm(tmp_path: Path, slack: FakeSlack,
                                                           okx: FakeOkx) -> None:
    env = {**bot_env(slack, okx, free_port()), "SLACK_APP_TOKEN": slack.app_token,
           "SLACK_SIGNING_SECRET": ""}
    process = bot_process([], env, tmp_path)
    try:
        slack.wait_for(lambda: slack.connected, timeout=20)
        assert slack.called("apps.connections.open")[0].token == slack.app_token
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "mode=socket" in err
