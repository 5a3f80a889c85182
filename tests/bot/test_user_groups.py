"""SPEC §2, user groups through the real HTTP endpoint: one usergroups.users.list at a
time per group, and a clear answer when Slack cannot say who is in it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.bot.conftest import APPROVALS, DAVE, Harness

LOOKUP = "usergroups.users.list"
UNCHECKED = "couldn't check"


def test_concurrent_commands_share_one_lookup(bot: Harness) -> None:
    bot.slack.hold(LOOKUP)
    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: bot.command("status", user=DAVE), range(20)))
    bot.slack.wait_for(lambda: bot.slack.held)
    bot.slack.release()
    for reply in replies:  # every one got past the permission check
        text = reply.followup()
        assert "*live* (LIVE)" in text and ":no_entry:" not in text  # (read or "busy")
    assert len(bot.slack.called(LOOKUP)) == 1


def test_rate_limited_lookup_says_membership_could_not_be_checked(bot: Harness) -> None:
    bot.slack.fail(LOOKUP, "ratelimited", times=5, status=429, retry_after=1)
    text = bot.command("on", user=DAVE).followup()
    assert UNCHECKED in text and "try again in a moment" in text
    assert "not on the list" not in text
    nothing_happened(bot)


def test_dropped_connection_says_membership_could_not_be_checked(bot: Harness) -> None:
    bot.slack.drop(LOOKUP, times=5)
    text = bot.command("on", user=DAVE).followup()
    assert UNCHECKED in text
    nothing_happened(bot)


def nothing_happened(bot: Harness) -> None:
    assert bot.slack.posted(APPROVALS) == []
    assert bot.okx.codes() == []
    [refusal] = [e for e in bot.store.audit_events()
                 if e.event == "refused:request"]
    assert refusal.actor == DAVE and UNCHECKED in str(refusal.detail["reason"])
