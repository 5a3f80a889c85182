"""AUTOREPAY_ACCOUNTS, per-account people and credentials: settings read from the
environment, every mistake named on a line of its own."""

from __future__ import annotations

import pytest

from bot import credentials
from bot.accounts import Account, read_accounts
from bot.config import Access, ConfigError, load_settings
from bot.credentials import CredentialsError, KeyringUnavailable

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret-signing",
    "AUTOREPAY_APPROVAL_CHANNEL": "C0APPROVE", "AUTOREPAY_REQUESTERS": "U0ALICE01",
    "AUTOREPAY_APPROVERS": "U0BOB0001, U0CAROL01",
}


def problems(**environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, **environ})
    return caught.value.problems


def test_unset_means_the_two_accounts_the_bot_always_had() -> None:
    assert load_settings(GOOD).accounts == (Account("live"), Account("demo", demo=True))
    assert load_settings({**GOOD, "AUTOREPAY_ACCOUNTS": " "}).accounts == \
        (Account.LIVE, Account.DEMO)


def test_names_with_demo_marks_case_and_spaces() -> None:
    settings = load_settings({**GOOD, "AUTOREPAY_ACCOUNTS": " Main, desk-a ,PAPER : demo,"})
    assert settings.accounts == (Account("main"), Account("desk-a"),
                                 Account("paper", demo=True))


@pytest.mark.parametrize(("raw", "said"), [
    ("main, main", "names 'main' twice"),
    ("-desk", "a name is 1 to 31"),
    ("desk_a", "a name is 1 to 31"),
    ("a" * 32, "a name is 1 to 31"),
    ("desk--a", "can't contain '--'"),
    ("status", "is a command word"),
    ("pending", "is a command word"),
    ("main:paper", "only 'demo' is allowed"),
    (",,", "names no account"),
    ("mention", "AUTOREPAY_MENTION_APPROVERS, a setting of its own"),
])
def test_malformed_account_lists_are_errors(raw: str, said: str) -> None:
    _, found = read_accounts(raw)
    assert len(found) == 1 and said in found[0]
    assert any(said in p for p in problems(AUTOREPAY_ACCOUNTS=raw))


def test_per_account_lists_replace_the_global_ones_for_that_account_only() -> None:
    settings = load_settings({**GOOD, "AUTOREPAY_ACCOUNTS": "main, desk-a",
                              "AUTOREPAY_DESK_A_APPROVERS": "U0DAVE001, S0DESKA"})
    assert settings.access(Account("desk-a")) == Access(("U0ALICE01",), ("U0DAVE001", "S0DESKA"))
    assert settings.access(Account("main")) == Access(("U0ALICE01",), ("U0BOB0001", "U0CAROL01"))


def test_a_per_account_variable_for_no_configured_account_is_an_error() -> None:
    found = problems(AUTOREPAY_ACCOUNTS="main, desk-a", AUTOREPAY_DESKA_APPROVERS="U0DAVE001")
    assert found == ["AUTOREPAY_DESKA_APPROVERS: there is no account 'deska' in "
                     "AUTOREPAY_ACCOUNTS (main, desk-a)"]


def test_bad_ids_in_a_per_account_list_are_named() -> None:
    found = problems(AUTOREPAY_ACCOUNTS="main", AUTOREPAY_MAIN_REQUESTERS="alice")
    assert any(p.startswith("AUTOREPAY_MAIN_REQUESTERS has 'alice'") for p in found)


def test_global_lists_may_be_empty_when_every_account_has_its_own() -> None:
    environ = {k: v for k, v in GOOD.items() if k not in ("AUTOREPAY_REQUESTERS",
                                                           "AUTOREPAY_APPROVERS")}
    environ |= {"AUTOREPAY_ACCOUNTS": "main, desk-a",
                "AUTOREPAY_MAIN_REQUESTERS": "U0ALICE01", "AUTOREPAY_MAIN_APPROVERS": "U0BOB0001",
                "AUTOREPAY_DESK_A_REQUESTERS": "U0ALICE01",
                "AUTOREPAY_DESK_A_APPROVERS": "U0CAROL01"}
    assert load_settings(environ).access(Account("desk-a")).approvers == ("U0CAROL01",)
    del environ["AUTOREPAY_DESK_A_APPROVERS"]
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert caught.value.problems == [
        "AUTOREPAY_APPROVERS is not set: user IDs (U…, W…) or user group IDs (S…), "
        "comma-separated who may approve (or set AUTOREPAY_<ACCOUNT>_APPROVERS for desk-a)"]


def test_the_quorum_is_judged_account_by_account() -> None:
    found = problems(AUTOREPAY_ACCOUNTS="main, desk-a", AUTOREPAY_APPROVALS_REQUIRED="2",
                     AUTOREPAY_DESK_A_APPROVERS="U0DAVE001")
    assert found == ["AUTOREPAY_APPROVALS_REQUIRED=2 can never be reached: "
                     "AUTOREPAY_DESK_A_APPROVERS names 1 user(s) and no user group"]


def test_reason_and_mention_switches() -> None:
    settings = load_settings(GOOD)
    assert not settings.require_reason and settings.mention_approvers
    settings = load_settings({**GOOD, "AUTOREPAY_REQUIRE_REASON": "true",
                              "AUTOREPAY_MENTION_APPROVERS": "false"})
    assert settings.require_reason and not settings.mention_approvers
    assert any("AUTOREPAY_MENTION_APPROVERS='maybe'" in p
               for p in problems(AUTOREPAY_MENTION_APPROVERS="maybe"))


# --- credentials per account -------------------------------------------------------
@pytest.fixture
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    def unusable(account: Account) -> None:
        raise KeyringUnavailable("no keyring")
    monkeypatch.setattr(credentials, "_from_keyring", unusable)


def test_each_account_reads_its_own_variables(no_keyring: None) -> None:
    environ = {"OKX_DESK_A_API_KEY": "k", "OKX_DESK_A_API_SECRET": "s",
               "OKX_DESK_A_API_PASSPHRASE": "p", "OKX_API_KEY": "other"}
    creds = credentials.load(Account("desk-a"), environ)
    assert (creds.api_key, creds.secret, creds.passphrase) == ("k", "s", "p")
    with pytest.raises(CredentialsError, match="OKX_MAIN_API_KEY"):
        credentials.load(Account("main"), environ)  # OKX_API_* belongs to `live` only


def test_live_reads_its_named_variables_first_then_the_unnamed_ones(no_keyring: None) -> None:
    unnamed = {"OKX_API_KEY": "k0", "OKX_API_SECRET": "s0", "OKX_API_PASSPHRASE": "p0"}
    assert credentials.load(Account.LIVE, unnamed).api_key == "k0"
    named = {"OKX_LIVE_API_KEY": "k1", "OKX_LIVE_API_SECRET": "s1",
             "OKX_LIVE_API_PASSPHRASE": "p1"}
    assert credentials.load(Account.LIVE, {**unnamed, **named}).api_key == "k1"
    with pytest.raises(CredentialsError, match="incomplete: OKX_LIVE_API_SECRET"):
        credentials.load(Account.LIVE, {**unnamed, "OKX_LIVE_API_KEY": "k1"})


@pytest.mark.parametrize("typo", ["AUTOREPAY_DESK-A_APPROVERS", "AUTOREPAY_DESK_A_APPROVER",
                                  "autorepay_desk_a_approvers", "AUTOREPAY_DESK_A_Requester"])
def test_a_misspelt_per_account_variable_is_an_error_not_silence(typo: str) -> None:
    found = problems(AUTOREPAY_ACCOUNTS="main, desk-a", **{typo: "U0DAVE001"})
    role = "APPROVERS" if "APPROVER" in typo.upper() else "REQUESTERS"
    assert found == [f"{typo} is not a variable the bot reads: write AUTOREPAY_DESK_A_{role}"]


def test_a_blank_per_account_list_does_not_count_as_set() -> None:
    environ = {k: v for k, v in GOOD.items() if k != "AUTOREPAY_APPROVERS"}
    with pytest.raises(ConfigError) as caught:
        load_settings({**environ, "AUTOREPAY_ACCOUNTS": "main", "AUTOREPAY_MAIN_APPROVERS": " "})
    assert [p for p in caught.value.problems if p.startswith("AUTOREPAY_APPROVERS is not set")]


def test_a_demo_account_named_live_does_not_take_the_live_key(no_keyring: None) -> None:
    unnamed = {"OKX_API_KEY": "k0", "OKX_API_SECRET": "s0", "OKX_API_PASSPHRASE": "p0"}
    with pytest.raises(CredentialsError, match="OKX_LIVE_API_KEY"):
        credentials.load(Account("live", demo=True), unnamed)


@pytest.mark.parametrize("typo", ["AUTOREPAY_DESK_A_REQUESTORS", "AUTOREPAY_DESK_A_APROVERS",
                                  "AUTOREPAY_DESK_A_APPROVERS_", " AUTOREPAY_DESK_A_APPROVERS",
                                  "AUTOREPAY_DESK_A_APPROVERS\u200b", "AUTO_REPAY_MAIN_APPROVERS",
                                  "AUTOREPAY_DESK_A_APPROVALS"])
def test_other_misspellings_of_per_account_lists_are_errors_too(typo: str) -> None:
    found = problems(AUTOREPAY_ACCOUNTS="main, desk-a", **{typo: "U0DAVE001"})
    assert found == [f"{typo!r} is not a variable the bot reads: an account's own lists are "
                     "AUTOREPAY_<NAME>_REQUESTERS and AUTOREPAY_<NAME>_APPROVERS (NAME "
                     "upper-cased, - → _)"]


def test_the_global_settings_about_approvals_are_not_taken_for_typos() -> None:
    settings = load_settings({**GOOD, "AUTOREPAY_APPROVAL_TTL": "60",
                              "AUTOREPAY_APPROVALS_REQUIRED": "1",
                              "AUTOREPAY_ALLOW_SELF_APPROVAL": "false",
                              "AUTOREPAY_REQUIRE_REASON": "true"})
    assert settings.approval_ttl == 60 and settings.require_reason
