"""The README, .env.example and app.yaml stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def variables_in_code() -> set[str]:
    source = "".join((ROOT / f).read_text() for f in ("bot/config.py", "bot/credentials.py"))
    names = set(re.findall(r"\"((?:SLACK|AUTOREPAY|OKX)_[A-Z_]*[A-Z]|PORT)\"", source))
    names |= {f"{p}API_{n}" for p in ("OKX_", "OKX_DEMO_") for n in ("KEY", "SECRET",
                                                                      "PASSPHRASE")}
    return names


def test_every_variable_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    names = variables_in_code()
    assert len(names) >= 20
    for name in names:
        assert f"`{name}" in readme or f"{name}`" in readme, f"{name} missing from README"
        assert re.search(rf"^{name}=", example, re.M), f"{name} missing from .env.example"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    command = "pip install -e '.[dev]' && pytest"
    assert command in readme
    assert re.search(r"pip install -e '\.\[dev\]'.* && pytest\s*$", ci, re.M)


def test_manifest_asks_only_for_the_scopes_the_code_uses() -> None:
    manifest = (ROOT / "app.yaml").read_text()
    block = manifest.split("bot:\n", 1)[1].split("settings:", 1)[0]
    scopes = set(re.findall(r"^\s+- ([a-z:.]+)\s*$", block, re.M))
    assert scopes == {"commands", "chat:write", "usergroups:read"}
    assert "command: /autorepay" in manifest and "usage_hint:" in manifest
    assert "socket_mode_enabled: true" in manifest and "is_enabled: true" in manifest
