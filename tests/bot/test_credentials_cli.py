"""`python -m bot credentials set|check|delete` as a person types it: prompts, pipes,
Ctrl-C, Ctrl-D, a terminal, no keyring, OKX away. Secrets are never shown."""

from __future__ import annotations

import io
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as NoKeyring

from bot.accounts import Account
from bot.cli import main
from bot.credentials_cli import manage_credentials
from tests.bot.conftest import OKX_ENV
from tests.bot.process import ROOT, bot_process, refused_port
from tests.fakes.memory_keyring import MemoryKeyring
from tests.fakes.okx_server import FakeOkx

ACCOUNTS = {"AUTOREPAY_ACCOUNTS": "main, desk-a, paper:demo"}
# A keyring that works inside the child process (and forgets when it exits).
WITH_KEYRING = {"PYTHON_KEYRING_BACKEND": "tests.fakes.memory_keyring.MemoryKeyring"}
TYPED = ["key-typed", "SECRET-typed", "PASS-typed"]
PROMPTS = ["API key: ", "Secret key: ", "Passphrase: "]
CANCELLED = "autorepay: cancelled; nothing was stored"


def typed(count: int) -> str:
    return "".join(f"{line}\n" for line in TYPED[:count])


def read_until(fd: int, text: str, timeout: float = 20.0) -> str:
    """Output up to `text`, read from the descriptor itself so nothing waits in a buffer."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            raise AssertionError(f"never printed {text!r}; printed {seen!r}")
        seen += chunk
    return seen.decode()


def wait_until_reading(process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Until the process sleeps in its read of stdin. A signal that lands after the prompt
    but just before the read begins is only acted on when the read returns (CPython checks
    for signals between steps), so a test that signals too early would wait forever."""
    stat = Path(f"/proc/{process.pid}/stat")
    if not stat.exists():  # not Linux: give it a moment instead
        time.sleep(0.5)
        return
    deadline = time.monotonic() + timeout
    # After the prompt is out, the only thing the process can sleep on is that read.
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "S":
        if time.monotonic() > deadline:
            raise AssertionError("the process never waited for input")
        time.sleep(0.01)


class InterruptedStdin(io.StringIO):
    """Typed lines, then Ctrl-C instead of the next one."""

    def readline(self, size: int = -1, /) -> str:  # type: ignore[override]  # typeshed: bytes
        line = super().readline(size)
        if not line:
            raise KeyboardInterrupt
        return line


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`main()` run here: in an empty folder (no .env), its signal handlers undone."""
    monkeypatch.chdir(tmp_path)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


# set


def test_set_reads_piped_input_without_warnings_or_echo(tmp_path: Path) -> None:
    process = bot_process(["credentials", "set"], WITH_KEYRING, tmp_path)
    out, err = process.communicate(input=typed(3), timeout=30)
    assert process.returncode == 0, err
    assert err == ""  # no GetPassWarning: there is no terminal whose echo to control
    assert "Stored the OKX live credentials" in out
    assert "SECRET-typed" not in out and "PASS-typed" not in out


def test_set_without_a_keyring_says_so_before_any_secret_is_typed(tmp_path: Path) -> None:
    process = bot_process(["credentials", "set"], {}, tmp_path)
    out, err = process.communicate(input=typed(3), timeout=30)
    assert process.returncode == 2
    [line] = err.splitlines()
    assert line.startswith("autorepay: No usable keyring on this machine: set ")
    assert "OKX_LIVE_API_KEY" in line and "OKX_API_PASSPHRASE" in line
    assert "API key:" not in out


def test_set_stores_what_was_typed_and_delete_removes_it(
        memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed(3)))
    assert manage_credentials("set", Account.DEMO, {}) == 0
    assert "SECRET-typed" in memory_keyring.entries[("autorepay-bot", "demo")]
    assert manage_credentials("delete", Account.DEMO, {}) == 0
    assert memory_keyring.entries == {}
    out, err = capsys.readouterr()
    assert "SECRET-typed" not in out + err and "PASS-typed" not in out + err


@pytest.mark.parametrize("answered", [0, 1, 2])
def test_end_of_input_at_a_prompt_cancels_in_one_line(tmp_path: Path, answered: int) -> None:
    process = bot_process(["credentials", "set"], WITH_KEYRING, tmp_path)
    _, err = process.communicate(input=typed(answered), timeout=30)
    assert process.returncode == 1
    assert err.splitlines() == [CANCELLED]


@pytest.mark.parametrize("answered", [0, 1, 2])
def test_ctrl_c_at_a_prompt_cancels_in_one_line(tmp_path: Path, answered: int) -> None:
    process = bot_process(["credentials", "set", "--demo"], WITH_KEYRING, tmp_path)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(typed(answered))
        process.stdin.flush()
        read_until(process.stdout.fileno(), PROMPTS[answered])
        wait_until_reading(process)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)  # stdin stays open: the answer must come from the signal
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert err.splitlines() == [CANCELLED]


@pytest.mark.parametrize(("stdin", "exit_code"), [(io.StringIO, 1), (InterruptedStdin, 130)])
def test_a_cancelled_set_stores_nothing(memory_keyring: MemoryKeyring,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str],
                                        stdin: type[io.StringIO], exit_code: int) -> None:
    monkeypatch.setattr(sys, "stdin", stdin(typed(2)))
    assert manage_credentials("set", Account.LIVE, {}) == exit_code
    assert memory_keyring.entries == {}
    out, err = capsys.readouterr()
    assert err == CANCELLED + "\n"
    assert "SECRET-typed" not in out + err


def test_on_a_terminal_the_secrets_are_not_echoed(tmp_path: Path) -> None:
    main, terminal = os.openpty()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **WITH_KEYRING}
    process = subprocess.Popen([sys.executable, "-m", "bot", "credentials", "set"], env=env,
                               cwd=tmp_path, stdin=terminal, stdout=terminal, stderr=terminal,
                               start_new_session=True)
    os.close(terminal)
    screen = ""
    try:
        for prompt, answer in zip(PROMPTS, TYPED, strict=True):
            screen += read_until(main, prompt)
            os.write(main, f"{answer}\n".encode())
        screen += read_until(main, "Stored")
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.wait()
        os.close(main)
    assert "key-typed" in screen  # the API key is echoed as it is typed
    assert "SECRET-typed" not in screen and "PASS-typed" not in screen
    assert "Warning" not in screen


# check


def test_check_without_a_keyring_names_only_the_variables(tmp_path: Path) -> None:
    process = bot_process(["credentials", "check", "--demo"], {}, tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert len(err.splitlines()) == 1
    assert "OKX_DEMO_API_KEY" in err and "OKX_DEMO_API_PASSPHRASE" in err
    assert "credentials set" not in err


def test_check_with_a_keyring_suggests_set_or_the_variables(tmp_path: Path) -> None:
    process = bot_process(["credentials", "check", "--demo"], WITH_KEYRING, tmp_path)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "credentials set --account demo" in err and "OKX_DEMO_API_KEY" in err


def test_check_reads_the_account(tmp_path: Path, okx: FakeOkx) -> None:
    process = bot_process(["credentials", "check"], {**OKX_ENV, "OKX_BASE_URL": okx.url},
                          tmp_path)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "uid 448812345678" in out and "Spot mode" in out and "auto repay:   OFF" in out
    for secret in (OKX_ENV["OKX_API_SECRET"], OKX_ENV["OKX_API_PASSPHRASE"]):
        assert secret not in out + err


def test_check_with_okx_unreachable_says_so_in_one_line(tmp_path: Path) -> None:
    with refused_port() as port:
        nowhere = f"http://127.0.0.1:{port}"
        process = bot_process(["credentials", "check"], {**OKX_ENV, "OKX_BASE_URL": nowhere},
                              tmp_path)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert err.splitlines() == [
        f"autorepay: OKX live check failed: could not reach {nowhere} (ConnectError)"]


def test_ctrl_c_while_okx_is_slow_ends_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(20)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        process = bot_process(["credentials", "check"], {**OKX_ENV, "OKX_BASE_URL": url},
                              tmp_path)
        try:
            with silent.accept()[0]:  # the check is now waiting for an answer
                process.send_signal(signal.SIGINT)
                _, err = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130
    assert err.splitlines() == ["autorepay: cancelled"]


def test_check_with_a_damaged_keyring_entry_says_so_in_one_line(
        memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]) -> None:
    memory_keyring.set_password("autorepay-bot", "live", "SECRET-BLOB-not-json")
    assert manage_credentials("check", Account.LIVE, OKX_ENV) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "autorepay: The keyring entry for OKX live is damaged: run "
        "`python -m bot credentials set --account live` again"]


# delete


def test_delete_without_a_keyring_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    keyring.set_keyring(NoKeyring())
    assert manage_credentials("delete", Account.LIVE, {}) == 2
    assert capsys.readouterr().err.startswith("autorepay: No usable keyring")


# --account


def test_account_flag_chooses_the_keyring_entry(
        in_process: None, memory_keyring: MemoryKeyring, okx_server: FakeOkx,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {**ACCOUNTS, "OKX_BASE_URL": okx_server.url}.items():
        monkeypatch.setenv(name, value)
    okx_server.add_account(api_key="key-typed", secret="SECRET-typed",
                           passphrase="PASS-typed", uid="700000000007")
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed(3)))
    assert main(["credentials", "set", "--account", "desk-a"]) == 0
    assert list(memory_keyring.entries) == [("autorepay-bot", "desk-a")]
    assert main(["credentials", "check", "--account", "Desk-A"]) == 0  # any case
    [config] = okx_server.requests
    assert config.headers["OK-ACCESS-KEY"] == "key-typed"  # read from desk-a's entry
    assert "x-simulated-trading" not in {name.lower() for name in config.headers}
    assert main(["credentials", "delete", "--account", "desk-a"]) == 0
    assert memory_keyring.entries == {}
    out, err = capsys.readouterr()
    assert err == ""
    assert "OKX desk-a API key" in out and "Stored the OKX desk-a credentials" in out
    assert "OKX desk-a account: uid 700000000007" in out
    assert "Deleted the OKX desk-a credentials." in out
    assert "SECRET-typed" not in out and "PASS-typed" not in out


def test_demo_flag_is_the_account_named_demo(
        in_process: None, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed(3) * 2))
    assert main(["credentials", "set", "--demo"]) == 0
    assert main(["credentials", "set", "--demo", "--account", "DEMO"]) == 0  # the same one
    assert list(memory_keyring.entries) == [("autorepay-bot", "demo")]
    assert "OKX demo API key for demo trading (" in capsys.readouterr().out


def test_check_a_demo_account_by_name_uses_demo_trading(tmp_path: Path, okx: FakeOkx) -> None:
    env = {**ACCOUNTS, "OKX_BASE_URL": okx.url,
           "OKX_PAPER_API_KEY": OKX_ENV["OKX_DEMO_API_KEY"],
           "OKX_PAPER_API_SECRET": OKX_ENV["OKX_DEMO_API_SECRET"],
           "OKX_PAPER_API_PASSPHRASE": OKX_ENV["OKX_DEMO_API_PASSPHRASE"]}
    process = bot_process(["credentials", "check", "--account", "paper"], env, tmp_path)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "OKX paper account (demo trading): uid 900000000001 (demo-desk)" in out
    [config] = okx.requests
    headers = {name.lower(): value for name, value in config.headers.items()}
    assert headers["x-simulated-trading"] == "1" and config.code == "0"
    assert OKX_ENV["OKX_DEMO_API_SECRET"] not in out + err


@pytest.mark.parametrize(("argv", "environ", "line"), [
    (["check", "--account", "desk-b"], ACCOUNTS,
     "autorepay: there is no account 'desk-b': the accounts are main, desk-a, paper "
     "(AUTOREPAY_ACCOUNTS sets them)"),
    (["set"], ACCOUNTS,
     "autorepay: there is no account 'live' (the default without --account): the accounts "
     "are main, desk-a, paper (AUTOREPAY_ACCOUNTS sets them)"),
    (["delete", "--demo"], ACCOUNTS,
     "autorepay: there is no account 'demo': the accounts are main, desk-a, paper "
     "(AUTOREPAY_ACCOUNTS sets them)"),
    (["set", "--demo", "--account", "desk-a"], ACCOUNTS,
     "autorepay: --demo is short for --account demo: use --account desk-a without --demo"),
    (["set", "--account", "main"], {"AUTOREPAY_ACCOUNTS": "main, desk a"},
     "autorepay: config error: AUTOREPAY_ACCOUNTS has 'desk a': a name is 1 to 31 letters, "
     "digits or '-', starting with a letter or digit"),
])
def test_an_account_that_cant_be_chosen_is_one_line_and_exit_2(
        in_process: None, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str],
        line: str) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed(3)))
    assert main(["credentials", *argv]) == 2
    assert capsys.readouterr() == ("", line + "\n")  # nothing asked, nothing stored
    assert memory_keyring.entries == {}
