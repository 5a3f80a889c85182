"""What the bot knows of each account's auto repay between changes (SPEC §9).

A `Reading` is the last state the bot knew for an account: from a read of its
configuration (the drift watch, App Home, start-up) or from the bot's own confirmed
change. A `Drift` is a reading that differed from the one before it while no change of
the bot's was in flight: someone changed auto repay outside the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.accounts import Account
from bot.approvals import ChangeRequest


class Source(StrEnum):
    READ = "read"  # a read of the account's configuration
    CHANGE = "change"  # the bot's own change, as OKX confirmed it


@dataclass(frozen=True)
class Reading:
    account: Account
    uid: str
    auto_repay: bool
    read_at: float  # epoch seconds: when OKX said so
    source: Source


@dataclass(frozen=True)
class Drift:
    id: int
    account: Account
    uid: str
    auto_repay: bool  # the state found
    was: bool  # the state the bot knew before
    was_at: float  # when it knew it
    at: float  # when the change was found
    alert_ts: str = ""  # the alert's message in the approval channel, once posted


def happened(item: ChangeRequest | Drift) -> float:
    """When a drift was found, or a request made: the order of `history` and App Home."""
    return item.at if isinstance(item, Drift) else item.created_at


def newest_first(requests: list[ChangeRequest], drifts: list[Drift]
                 ) -> list[ChangeRequest | Drift]:
    """Finished requests and drifts together, newest first."""
    return sorted([*requests, *drifts], key=happened, reverse=True)
