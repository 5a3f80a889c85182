"""Settings: the environment (and .env) read once at start into one frozen object.

Every problem found is reported, one readable line each, in a single ConfigError.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.accounts import CLASHES, DEFAULT, Account, read_accounts
from bot.database import PATH_VARIABLE, URL_VARIABLE, BadDatabaseUrl, Database

USER_OR_GROUP = re.compile(r"^[UWS][A-Z0-9]{2,}$")
CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_OKX_BASE_URL = "https://www.okx.com"
# Values .env.example ships with: left in place, they would pass every format check.
PLACEHOLDER_IDS = frozenset({"C0123456789", "U0123456789", "S0123456789", "U0987654321"})


CONFIG_EXIT = 2  # the exit code for a configuration the bot can't run with


def report(problems: list[str]) -> int:
    """Print each problem on a line of its own (stderr); the exit code to end with."""
    for problem in problems:
        print(f"autorepay: config error: {problem}", file=sys.stderr)
    return CONFIG_EXIT


class ConfigError(Exception):
    """The configuration cannot work; `problems` holds one sentence per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Access:
    """Who may ask for changes to an account, and who may approve them."""

    requesters: tuple[str, ...]
    approvers: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str = field(repr=False)
    slack_app_token: str = field(repr=False)
    slack_api_url: str
    approval_channel: str
    requesters: tuple[str, ...]
    approvers: tuple[str, ...]
    allowed_channels: tuple[str, ...] = ()
    approvals_required: int = 1
    allow_self_approval: bool = False
    approval_ttl: int = 900
    db_path: Path = Path("autorepay.db")
    okx_base_url: str = DEFAULT_OKX_BASE_URL
    host: str = "0.0.0.0"
    port: int = 3000
    log_level: str = "INFO"
    max_connections: int = 256
    force_http: bool = False  # --http: serve HTTP even when SLACK_APP_TOKEN is set
    accounts: tuple[Account, ...] = DEFAULT
    # AUTOREPAY_<NAME>_REQUESTERS / _APPROVERS: replace the global lists for that account.
    per_account: Mapping[str, Access] = field(default_factory=dict)
    require_reason: bool = False
    mention_approvers: bool = True
    # AUTOREPAY_DATABASE_URL (empty: SQLite at db_path); shown only through `database`.
    database_url: str = field(default="", repr=False)
    lease_seconds: int = 15  # a job of a replica that died is taken over after this
    drift_check_seconds: int = 300  # 0: no drift watch
    health_port: int | None = None  # Socket Mode: /healthz and /metrics on this port
    log_format: str = "text"  # or "json": one JSON object per line

    @property
    def database(self) -> Database:
        return Database.parse(self.database_url) if self.database_url \
            else Database.sqlite(self.db_path)

    def access(self, account: Account) -> Access:
        return self.per_account.get(account.name,
                                    Access(self.requesters, self.approvers))

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token) and not self.force_http


class _Reader:
    """Reads variables from a mapping and collects every problem instead of stopping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []
        self.placeholders: set[str] = set()

    def text(self, name: str, default: str = "") -> str:
        value = self.environ.get(name, default).strip() or default
        if _placeholder(value):
            if name not in self.placeholders:
                self.placeholders.add(name)
                self.problems.append(f"{name}={value!r} is the example value from "
                                     ".env.example: replace it with the real one (or "
                                     "delete the line if you don't use it)")
            return ""
        return value

    def required(self, name: str, hint: str) -> str:
        value = self.text(name)
        if not value and name not in self.placeholders:
            self.problems.append(f"{name} is not set: {hint}")
        return value

    def integer(self, name: str, default: int, minimum: int, maximum: int = 10**9) -> int:
        raw = self.text(name)
        if not raw:
            return default
        if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= maximum:
            self.problems.append(f"{name}={raw!r} must be a whole number from {minimum} "
                                 f"to {maximum}")
            return default
        return int(raw)

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not value.startswith(("https://", "http://")):
            self.problems.append(f"{name}={value!r} must be a URL starting with https://")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self.text(name, "true" if default else "false").lower()
        if raw not in ("true", "false", "1", "0", "yes", "no"):
            self.problems.append(f"{name}={raw!r} must be true or false")
        return raw in ("true", "1", "yes")

    def ids(self, name: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        raw = self.environ.get(name, "")
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        bad = [item for item in items if not pattern.match(item)]
        if bad:
            self.problems.append(f"{name} has {', '.join(map(repr, bad))}: expected {what}")
        examples = [item for item in items if item in PLACEHOLDER_IDS]
        if examples:
            self.placeholders.add(name)
            self.problems.append(f"{name} has {', '.join(map(repr, examples))}, the example "
                                 "value from .env.example: replace it with real IDs")
        return tuple(item for item in items if item not in PLACEHOLDER_IDS)


def _placeholder(value: str) -> bool:
    return value in PLACEHOLDER_IDS or value.endswith(("...", "…"))


def load_settings(environ: Mapping[str, str], *, force_http: bool = False,
                  port: int | None = None) -> Settings:
    """Settings, or ConfigError listing every problem. `force_http` and `port` are the
    command-line flags `--http` and `--port`."""
    settings, problems = read_settings(environ, force_http=force_http, port=port)
    if problems:
        raise ConfigError(problems)
    return settings


def read_settings(environ: Mapping[str, str], *, force_http: bool = False,
                  port: int | None = None) -> tuple[Settings, list[str]]:
    """Settings as far as they could be read (defaults where a value is wrong), and every
    problem found, so that later checks can add theirs to the same report."""
    r = _Reader(environ)
    bot_token = r.required("SLACK_BOT_TOKEN", "the bot token (xoxb-…) from OAuth & Permissions")
    # --http: the app token is neither used nor checked.
    app_token = "" if force_http else r.text("SLACK_APP_TOKEN")
    signing_secret = r.text("SLACK_SIGNING_SECRET")
    if not app_token and not signing_secret:
        r.problems.append("SLACK_SIGNING_SECRET is not set: HTTP mode needs it to verify "
                          "requests" + ("" if force_http else
                                        " (or set SLACK_APP_TOKEN for Socket Mode)"))
    if bot_token and not bot_token.startswith("xoxb-"):
        r.problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    if app_token and not app_token.startswith("xapp-"):
        r.problems.append("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    channel = r.required("AUTOREPAY_APPROVAL_CHANNEL", "the channel ID (C…) for approvals")
    if channel and not CHANNEL.match(channel):
        r.problems.append(f"AUTOREPAY_APPROVAL_CHANNEL={channel!r} is not a channel ID "
                          "(C… or G…; in Slack: channel details → About → Channel ID)")
    people = "user IDs (U…, W…) or user group IDs (S…), comma-separated"
    accounts, account_problems = read_accounts(environ.get("AUTOREPAY_ACCOUNTS"))
    r.problems.extend(account_problems)
    requesters = r.ids("AUTOREPAY_REQUESTERS", USER_OR_GROUP, people)
    approvers = r.ids("AUTOREPAY_APPROVERS", USER_OR_GROUP, people)
    per_account = _per_account(r, accounts, people, Access(requesters, approvers))
    for role, found, what in (("REQUESTERS", requesters, "who may ask"),
                              ("APPROVERS", approvers, "who may approve")):
        name = f"AUTOREPAY_{role}"
        uncovered = [a for a in accounts
                     if not r.environ.get(f"AUTOREPAY_{a.variable}_{role}", "").strip()]
        if not found and uncovered and name not in r.placeholders:
            r.problems.append(f"{name} is not set: {people} {what} (or set "
                              f"AUTOREPAY_<ACCOUNT>_{role} for "
                              f"{', '.join(a.name for a in uncovered)})")
    settings = Settings(
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_app_token=app_token,
        slack_api_url=_with_slash(r.url("SLACK_API_URL", DEFAULT_SLACK_API_URL)),
        approval_channel=channel,
        requesters=requesters,
        approvers=approvers,
        allowed_channels=r.ids("AUTOREPAY_ALLOWED_CHANNELS", CHANNEL, "channel IDs (C…, G…)"),
        approvals_required=r.integer("AUTOREPAY_APPROVALS_REQUIRED", 1, minimum=1),
        allow_self_approval=r.boolean("AUTOREPAY_ALLOW_SELF_APPROVAL"),
        approval_ttl=r.integer("AUTOREPAY_APPROVAL_TTL", 900, minimum=30),
        db_path=Path(r.text(PATH_VARIABLE, "autorepay.db")),
        database_url=_database_url(r),
        lease_seconds=r.integer("AUTOREPAY_LEASE_SECONDS", 15, minimum=5, maximum=3600),
        drift_check_seconds=_drift_check_seconds(r),
        health_port=_health_port(r),
        log_format=_log_format(r),
        okx_base_url=_okx_url(r),
        host=r.text("AUTOREPAY_HOST", "0.0.0.0"),
        port=_port(r, port),
        log_level=_log_level(r),
        max_connections=r.integer("AUTOREPAY_MAX_CONNECTIONS", 256, minimum=8, maximum=10000),
        force_http=force_http,
        accounts=accounts or DEFAULT,
        per_account=per_account,
        require_reason=r.boolean("AUTOREPAY_REQUIRE_REASON"),
        mention_approvers=r.boolean("AUTOREPAY_MENTION_APPROVERS", default=True),
    )
    _check_db_path(settings, r.problems)
    r.problems.extend(quorum_problems(settings))
    return settings, r.problems


# Shaped like a per-account list, typos included (a dash, a missing S, lower case).
PER_ACCOUNT = re.compile(r"^AUTOREPAY_(.+)_(REQUESTERS?|APPROVERS?)$", re.IGNORECASE)
SETTINGS_LIKE_PER_ACCOUNT = frozenset(CLASHES.values())  # shaped like one, but a setting


def _per_account(r: _Reader, accounts: tuple[Account, ...], people: str,
                 everyone: Access) -> dict[str, Access]:
    """AUTOREPAY_<NAME>_REQUESTERS / _APPROVERS, for the accounts that have them. One
    naming no configured account is an error: a typo would otherwise go unnoticed."""
    known = {f"AUTOREPAY_{account.variable}_{role}" for account in accounts
             for role in ("REQUESTERS", "APPROVERS")} | SETTINGS_LIKE_PER_ACCOUNT
    for name in sorted(r.environ):
        match = PER_ACCOUNT.match(name)
        if name in known or not r.environ[name].strip():
            continue
        if not match:
            if _looks_per_account(name, accounts):
                r.problems.append(f"{name!r} is not a variable the bot reads: an account's "
                                  "own lists are AUTOREPAY_<NAME>_REQUESTERS and "
                                  "AUTOREPAY_<NAME>_APPROVERS (NAME upper-cased, - → _)")
            continue
        account = match[1].lower().replace("_", "-")
        role = match[2].upper().rstrip("S") + "S"
        if any(a.name == account for a in accounts):
            r.problems.append(f"{name} is not a variable the bot reads: write "
                              f"AUTOREPAY_{account.upper().replace('-', '_')}_{role}")
        else:
            r.problems.append(f"{name}: there is no account {account!r} in "
                              f"AUTOREPAY_ACCOUNTS ({', '.join(a.name for a in accounts)})")
    access = {}
    for account in accounts:
        names = [f"AUTOREPAY_{account.variable}_{role}" for role in ("REQUESTERS", "APPROVERS")]
        if not any(r.environ.get(name, "").strip() for name in names):
            continue
        requesters, approvers = (r.ids(name, USER_OR_GROUP, people) for name in names)
        access[account.name] = Access(requesters or everyone.requesters,
                                      approvers or everyone.approvers)
    return access


# Settings whose names mention requesters or approvals without being per-account lists.
GLOBAL_PEOPLE_SETTINGS = frozenset({
    "AUTOREPAY_REQUESTERS", "AUTOREPAY_APPROVERS", "AUTOREPAY_APPROVAL_CHANNEL",
    "AUTOREPAY_APPROVALS_REQUIRED", "AUTOREPAY_APPROVAL_TTL", "AUTOREPAY_ALLOW_SELF_APPROVAL",
    "AUTOREPAY_REQUIRE_REASON", "AUTOREPAY_MENTION_APPROVERS"})


def _looks_per_account(name: str, accounts: tuple[Account, ...]) -> bool:
    """A misspelling of a per-account list (REQUESTORS, APROVERS, a stray space or
    zero-width character, AUTO_REPAY_…), or an unknown setting of a configured account."""
    if name in GLOBAL_PEOPLE_SETTINGS:
        return False
    plain = "".join(ch for ch in name if ch.isalnum() or ch in "_-").upper()
    if not plain.startswith(("AUTOREPAY_", "AUTO_REPAY_")):
        return False
    if any(word in plain for word in ("REQUEST", "APPROV", "APROV")):
        return True
    return any(plain.startswith(f"AUTOREPAY_{a.variable}_") for a in accounts)


def _port(r: _Reader, flag: int | None) -> int:
    if flag is None:
        return r.integer("PORT", 3000, minimum=1, maximum=65535)
    if not 1 <= flag <= 65535:
        r.problems.append(f"--port {flag} must be a whole number from 1 to 65535")
    return flag


def quorum_problems(settings: Settings) -> list[str]:
    """Approval quorums that can never be reached, account by account."""
    problems: list[str] = []
    for account in settings.accounts:
        for problem in _quorum(settings, settings.access(account), account):
            if problem not in problems:
                problems.append(problem)
    return problems


def _quorum(settings: Settings, access: Access, account: Account) -> list[str]:
    """With user groups among the approvers the members are only known at run time, so
    only plain user lists are judged."""
    required = settings.approvals_required
    approvers = set(access.approvers)
    where = "AUTOREPAY_APPROVERS" if account.name not in settings.per_account else \
        f"AUTOREPAY_{account.variable}_APPROVERS"
    if not approvers or any(a.startswith("S") for a in approvers):
        return []
    if len(approvers) < required:
        return [f"AUTOREPAY_APPROVALS_REQUIRED={required} can never be reached: "
                f"{where} names {len(approvers)} user(s) and no user group"]
    if settings.allow_self_approval:
        return []
    stuck = [user for user in access.requesters
             if not user.startswith("S") and len(approvers - {user}) < required]
    if stuck:
        return [f"AUTOREPAY_APPROVALS_REQUIRED={required} can never be reached for requests "
                f"by {', '.join(stuck)}: they may not approve their own request and "
                f"{where} has too few other users (set "
                "AUTOREPAY_ALLOW_SELF_APPROVAL=true or add approvers)"]
    return []


def okx_base_url(environ: Mapping[str, str]) -> str:
    """OKX_BASE_URL alone, for commands that need no Slack settings."""
    r = _Reader(environ)
    url = _okx_url(r)
    if r.problems:
        raise ConfigError(r.problems)
    return url


def _okx_url(r: _Reader) -> str:
    return r.url("OKX_BASE_URL", DEFAULT_OKX_BASE_URL).rstrip("/")


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _drift_check_seconds(r: _Reader) -> int:
    """AUTOREPAY_DRIFT_CHECK_SECONDS: 0 turns the watch off, else at least 5 s."""
    seconds = r.integer("AUTOREPAY_DRIFT_CHECK_SECONDS", 300, minimum=0, maximum=86400)
    if 0 < seconds < 5:
        r.problems.append(f"AUTOREPAY_DRIFT_CHECK_SECONDS={seconds} must be 0 (no drift "
                          "watch) or from 5 to 86400")
        return 300
    return seconds


def _health_port(r: _Reader) -> int | None:
    """AUTOREPAY_HEALTH_PORT: where Socket Mode serves /healthz and /metrics (unset: no
    such port; HTTP mode serves them on PORT)."""
    if not r.text("AUTOREPAY_HEALTH_PORT"):
        return None
    return r.integer("AUTOREPAY_HEALTH_PORT", 0, minimum=1, maximum=65535) or None


LOG_FORMATS = ("text", "json")


def _log_format(r: _Reader) -> str:
    value = r.text("AUTOREPAY_LOG_FORMAT", "text").lower()
    if value not in LOG_FORMATS:
        r.problems.append(f"AUTOREPAY_LOG_FORMAT={value!r} must be text or json")
        return "text"
    return value


def _log_level(r: _Reader) -> str:
    level = r.text("AUTOREPAY_LOG_LEVEL", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        r.problems.append(f"AUTOREPAY_LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR")
    return level


def _database_url(r: _Reader) -> str:
    """AUTOREPAY_DATABASE_URL, checked; "" when unset or unusable (the problem is noted,
    never with the value: it holds a password)."""
    raw = r.environ.get(URL_VARIABLE, "").strip()
    if not raw:
        return ""
    if r.environ.get(PATH_VARIABLE, "").strip():
        r.problems.append(f"{URL_VARIABLE} and {PATH_VARIABLE} are both set: keep one "
                          f"({PATH_VARIABLE}=PATH is short for {URL_VARIABLE}=sqlite:///PATH)")
        return ""
    try:
        Database.parse(raw)
    except BadDatabaseUrl as exc:
        r.problems.append(str(exc))
        return ""
    return raw


def _check_db_path(settings: Settings, problems: list[str]) -> None:
    database = settings.database
    path = database.path
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        problems.append(f"{database}: folder {str(folder)!r} does not exist")
    elif path.is_dir():
        problems.append(f"{database} is a folder, not a database file")
