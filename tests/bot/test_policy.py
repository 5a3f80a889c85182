"""The permission policy on its own, with a fake group lookup and clock."""

from __future__ import annotations

from collections.abc import Iterable

from bot.policy import GroupLookupError, Policy, Role


class Groups:
    def __init__(self) -> None:
        self.members = {"S0DESK": ["U0DAVE001"]}
        self.calls = 0
        self.down = False

    async def __call__(self, group: str) -> Iterable[str]:
        self.calls += 1
        if self.down:
            raise GroupLookupError("ratelimited")
        return self.members.get(group, [])


def policy(groups: Groups, now: list[float]) -> Policy:
    return Policy(requesters=["U0ALICE01", "S0DESK"], approvers=["U0BOB0001"],
                  group_members=groups, cache_ttl=60, clock=lambda: now[0])


async def test_group_members_are_cached_for_the_ttl() -> None:
    groups, now = Groups(), [0.0]
    rules = policy(groups, now)
    assert await rules.has_role("U0DAVE001", Role.REQUESTER)
    groups.members["S0DESK"] = []
    now[0] = 59.0
    assert await rules.has_role("U0DAVE001", Role.REQUESTER)  # still cached
    now[0] = 61.0
    assert not await rules.has_role("U0DAVE001", Role.REQUESTER)  # removed from the group
    assert groups.calls == 2


async def test_lookup_failure_uses_last_known_or_nobody() -> None:
    groups, now = Groups(), [0.0]
    groups.down = True
    rules = policy(groups, now)
    assert not await rules.has_role("U0DAVE001", Role.REQUESTER)
    groups.down = False
    assert await rules.has_role("U0DAVE001", Role.REQUESTER)
    groups.down, now[0] = True, 120.0
    assert await rules.has_role("U0DAVE001", Role.REQUESTER)


async def test_direct_ids_need_no_lookup() -> None:
    groups, now = Groups(), [0.0]
    rules = policy(groups, now)
    assert await rules.may_request("U0ALICE01", "C1") is None
    assert await rules.may_approve("U0BOB0001") is None
    assert await rules.may_approve("U0ALICE01") is not None
    assert await rules.may_view("U0BOB0001", "C1") is None
    assert groups.calls == 1  # only may_view for Bob had to look into S0DESK
