"""The README, .env.example and app.yaml stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def variables_in_code() -> set[str]:
    source = "".join((ROOT / f).read_text()
                     for f in ("bot/config.py", "bot/credentials.py", "bot/accounts.py"))
    names = set(re.findall(r"\"((?:SLACK|AUTOREPAY|OKX)_[A-Z_]*[A-Z]|PORT)\"", source))
    return names


# Variables made from an account's name (NAME: upper-cased, "-" → "_").
PER_ACCOUNT = ("OKX_{}_API_KEY", "OKX_{}_API_SECRET", "OKX_{}_API_PASSPHRASE",
               "AUTOREPAY_{}_REQUESTERS", "AUTOREPAY_{}_APPROVERS")


def test_per_account_variables_are_documented_with_an_example() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for template in PER_ACCOUNT:
        assert f"`{template.format('<NAME>')}`" in readme, template
        assert re.search(rf"^# {template.format('DESK_A')}=", example, re.M), template
    for name in ("OKX_DEMO_API_KEY", "OKX_DEMO_API_SECRET", "OKX_DEMO_API_PASSPHRASE"):
        assert re.search(rf"^{name}=", example, re.M), name  # the default demo account


def test_every_variable_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    names = variables_in_code()
    assert len(names) >= 20
    for name in names:
        assert f"`{name}" in readme or f"{name}`" in readme, f"{name} missing from README"
        assert re.search(rf"^{name}=", example, re.M), f"{name} missing from .env.example"


TEST_COMMAND = ("python3 -m venv .venv && .venv/bin/pip install --quiet -c constraints.txt "
                "-e '.[dev]' && .venv/bin/pytest")
RUN_COMMAND = ("python3 -m venv .venv && .venv/bin/pip install --quiet -c constraints.txt "
               "-e . && .venv/bin/python -m bot")


def test_readme_commands_work_in_a_fresh_shell_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert TEST_COMMAND in readme and RUN_COMMAND in readme
    assert "activate" not in readme  # nothing assumes an activated venv
    assert ci.rstrip().endswith(TEST_COMMAND)


def test_readme_stands_on_its_own() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "SPEC" not in readme and "../shared" not in readme


def test_locked_versions_cover_every_dependency() -> None:
    locked = {line.split("==")[0].lower().replace("_", "-")
              for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    project = (ROOT / "pyproject.toml").read_text()
    wanted = {name.lower() for name in re.findall(r'^\s+"([A-Za-z0-9_.-]+)[<>=~]', project,
                                                   re.M)}
    assert wanted and wanted <= locked, wanted - locked


def test_manifest_asks_only_for_the_scopes_the_code_uses() -> None:
    manifest = (ROOT / "app.yaml").read_text()
    block = manifest.split("bot:\n", 1)[1].split("settings:", 1)[0]
    scopes = set(re.findall(r"^\s+- ([a-z:.]+)\s*$", block, re.M))
    assert scopes == {"commands", "chat:write", "usergroups:read", "channels:history",
                      "groups:history"}
    assert "command: /autorepay" in manifest and "usage_hint:" in manifest
    assert "socket_mode_enabled: true" in manifest and "is_enabled: true" in manifest
