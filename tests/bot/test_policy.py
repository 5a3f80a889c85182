"""The permission policy on its own, with a fake group lookup and clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiohttp
import pytest

from bot.policy import GroupLookupError, Policy, Role

DAVE = "U0DAVE001"  # requester through S0DESK
UNCHECKED = "couldn't check"
NOT_LISTED = "not on the list of people who may request"


class Groups:
    """Slack's usergroups.users.list: answers from `members`, or raises `failure`; with
    `gate` set, every lookup waits for it first (a slow Slack)."""

    def __init__(self) -> None:
        self.members = {"S0DESK": [DAVE]}
        self.calls = 0
        self.failure: BaseException | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, group: str) -> Iterable[str]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return self.members.get(group, [])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(groups: Groups, clock: Clock, lookup_timeout: float = 10.0) -> Policy:
    return Policy(requesters=["U0ALICE01", "S0DESK"], approvers=["U0BOB0001"],
                  group_members=groups, clock=clock, lookup_timeout=lookup_timeout)


async def test_group_members_are_cached_for_a_minute() -> None:
    groups, clock = Groups(), Clock()
    rules = policy(groups, clock)
    assert await rules.has_role(DAVE, Role.REQUESTER)
    groups.members["S0DESK"] = []
    clock.now += 59
    assert await rules.has_role(DAVE, Role.REQUESTER)  # still cached
    clock.now += 2
    assert not await rules.has_role(DAVE, Role.REQUESTER)  # removed from the group
    assert groups.calls == 2


async def test_concurrent_callers_share_one_lookup() -> None:
    groups, clock = Groups(), Clock()
    groups.gate = asyncio.Event()
    rules = policy(groups, clock)
    waiting = [asyncio.create_task(rules.may_request(DAVE, "C1", "live")) for _ in range(20)]
    await asyncio.sleep(0)  # let every caller reach the lookup
    groups.gate.set()
    assert await asyncio.gather(*waiting) == [None] * 20
    assert groups.calls == 1


async def test_failed_lookup_is_shared_too() -> None:
    groups, clock = Groups(), Clock()
    groups.gate, groups.failure = asyncio.Event(), GroupLookupError("ratelimited")
    rules = policy(groups, clock)
    waiting = [asyncio.create_task(rules.may_request(DAVE, "C1", "live")) for _ in range(20)]
    await asyncio.sleep(0)
    groups.gate.set()
    refusals = await asyncio.gather(*waiting)
    assert all(r is not None and UNCHECKED in r.reason for r in refusals)
    assert groups.calls == 1


async def test_a_caller_giving_up_does_not_cancel_the_lookup_for_the_others() -> None:
    groups, clock = Groups(), Clock()
    groups.gate = asyncio.Event()
    rules = policy(groups, clock)
    quitter = asyncio.create_task(rules.may_request(DAVE, "C1", "live"))
    stayer = asyncio.create_task(rules.may_request(DAVE, "C1", "live"))
    await asyncio.sleep(0)
    quitter.cancel()
    groups.gate.set()
    assert await stayer is None
    assert groups.calls == 1


async def test_slack_down_uses_the_last_known_members_for_an_hour() -> None:
    groups, clock = Groups(), Clock()
    rules = policy(groups, clock)
    assert await rules.may_request(DAVE, "C1", "live") is None
    groups.failure = GroupLookupError("ratelimited")
    clock.now += 3599
    assert await rules.may_request(DAVE, "C1", "live") is None  # stale, but less than an hour old
    assert groups.calls == 2  # Slack was asked again all the same
    clock.now += 1
    refusal = await rules.may_request(DAVE, "C1", "live")
    assert refusal is not None and UNCHECKED in refusal.reason
    assert NOT_LISTED not in refusal.reason


async def test_stale_members_also_say_no_to_non_members() -> None:
    groups, clock = Groups(), Clock()
    rules = policy(groups, clock)
    await rules.may_request(DAVE, "C1", "live")
    groups.failure, clock.now = GroupLookupError("ratelimited"), clock.now + 120
    refusal = await rules.may_request("U0MALLORY", "C1", "live")
    assert refusal is not None and NOT_LISTED in refusal.reason


async def test_failed_lookups_do_not_extend_the_hour() -> None:
    groups, clock = Groups(), Clock()
    rules = policy(groups, clock)
    await rules.may_request(DAVE, "C1", "live")
    groups.failure = GroupLookupError("ratelimited")
    for _ in range(6):
        clock.now += 600
        await rules.may_request(DAVE, "C1", "live")
    refusal = await rules.may_request(DAVE, "C1", "live")
    assert refusal is not None and UNCHECKED in refusal.reason


@pytest.mark.parametrize("failure", [
    GroupLookupError("ratelimited"),
    aiohttp.ServerDisconnectedError(),
    aiohttp.ClientConnectionError("connection reset"),
    TimeoutError(),
    ValueError("a bug in the lookup"),
], ids=lambda failure: type(failure).__name__)
async def test_with_none_known_membership_could_not_be_checked(failure: Exception) -> None:
    groups, clock = Groups(), Clock()
    groups.failure = failure
    rules = policy(groups, clock)
    refusal = await rules.may_request(DAVE, "C1", "live")
    assert refusal is not None
    assert UNCHECKED in refusal.reason and "try again in a moment" in refusal.reason
    assert NOT_LISTED not in refusal.reason
    assert "S0DESK" in refusal.operator_hint
    view = await rules.may_view(DAVE, "C1")
    assert view is not None and UNCHECKED in view.reason


async def test_a_hanging_lookup_is_given_up_on() -> None:
    groups, clock = Groups(), Clock()
    groups.gate = asyncio.Event()  # never set
    rules = policy(groups, clock, lookup_timeout=0.01)
    refusal = await rules.may_request(DAVE, "C1", "live")
    assert refusal is not None and UNCHECKED in refusal.reason


async def test_an_unknown_group_does_not_block_who_is_known_otherwise() -> None:
    groups, clock = Groups(), Clock()
    groups.failure = GroupLookupError("ratelimited")
    rules = Policy(requesters=["S0DESK"], approvers=["U0BOB0001"], group_members=groups,
                   clock=clock)
    assert await rules.may_view("U0BOB0001", "C1") is None  # an approver by ID
    assert await rules.may_approve("U0BOB0001", "live") is None
    assert groups.calls == 0


async def test_direct_ids_need_no_lookup() -> None:
    groups, clock = Groups(), Clock()
    rules = policy(groups, clock)
    assert await rules.may_request("U0ALICE01", "C1", "live") is None
    assert await rules.may_approve("U0BOB0001", "live") is None
    assert await rules.may_approve("U0ALICE01", "live") is not None
    assert await rules.may_view("U0BOB0001", "C1") is None
    assert groups.calls == 0


async def test_a_hung_lookup_with_members_known_does_not_hold_the_caller() -> None:
    """Seen: an approver in a group clicked after the cache ran out while Slack hung;
    the OKX write waited 10 s for the lookup."""
    groups, clock = Groups(), Clock()
    rules = Policy(requesters=["S0DESK"], approvers=[], group_members=groups, clock=clock,
                   stale_wait=0.05)
    assert await rules.may_request(DAVE, "C1", "live") is None
    groups.gate = asyncio.Event()  # Slack hangs from now on
    clock.now += 61
    async with asyncio.timeout(1.0):  # the lookup itself would take 10 s
        assert await rules.may_request(DAVE, "C1", "live") is None  # the last answer serves
    assert groups.calls == 2  # and Slack is being asked meanwhile
    groups.gate.set()


def desk_policy(groups: Groups, clock: Clock) -> Policy:
    """`desk-a` has lists of its own (AUTOREPAY_DESK_A_REQUESTERS / _APPROVERS)."""
    return Policy(requesters=["U0ALICE01"], approvers=["U0BOB0001"],
                  per_account={"desk-a": (["U0DESKREQ"], ["U0DESKOK1", "S0DESK"])},
                  group_members=groups, clock=clock)


async def test_an_approver_of_one_account_only_approves_that_account() -> None:
    groups, clock = Groups(), Clock()
    rules = desk_policy(groups, clock)
    assert await rules.may_approve("U0DESKOK1", "desk-a") is None
    assert await rules.may_approve(DAVE, "desk-a") is None  # through S0DESK
    live = await rules.may_approve("U0DESKOK1", "live")
    assert live is not None and live.operator_hint == "AUTOREPAY_APPROVERS"
    # The account's own list replaces the global one: the global approver is not one.
    desk = await rules.may_approve("U0BOB0001", "desk-a")
    assert desk is not None and "AUTOREPAY_DESK_A_APPROVERS" in desk.operator_hint
    assert await rules.may_approve("U0BOB0001", "live") is None


async def test_a_requester_of_one_account_only_requests_that_account() -> None:
    groups, clock = Groups(), Clock()
    rules = desk_policy(groups, clock)
    assert await rules.may_request("U0DESKREQ", "C1", "desk-a") is None
    refusal = await rules.may_request("U0DESKREQ", "C1", "live")
    assert refusal is not None and NOT_LISTED in refusal.reason
    refusal = await rules.may_request("U0ALICE01", "C1", "desk-a")
    assert refusal is not None and NOT_LISTED in refusal.reason


async def test_viewing_any_account_includes_the_per_account_lists() -> None:
    groups, clock = Groups(), Clock()
    rules = desk_policy(groups, clock)
    assert await rules.may_view("U0DESKREQ", "C1", None) is None
    assert await rules.may_view("U0DESKOK1", "C1") is None  # None is the default
    assert await rules.may_view(DAVE, "C1", None) is None  # through a group of desk-a
    assert await rules.may_view("U0DESKOK1", "C1", "desk-a") is None
    assert await rules.may_view("U0DESKOK1", "C1", "live") is not None
    assert await rules.may_view("U0MALLORY", "C1", None) is not None
    assert await rules.viewable("U0DESKOK1", ["live", "desk-a"]) == ["desk-a"]
    assert await rules.viewable("U0BOB0001", ["live", "desk-a"]) == ["live"]
