"""Jobs: the side effects of a decision, as data (SPEC §7).

A decision and the jobs it causes are stored in one transaction (bot.store); workers
(bot.worker) claim due jobs under a lease and run them; a failure of any kind puts the
job back with a capped exponential backoff. The job kinds, and what each one waits for:

    post_approval   post the approval message (first thing after a request is stored)
    okx_apply       the OKX write and its read-back: waits for nothing in Slack
    update_message  make the approval message show the request's current state
    thread_reply    the outcome, in the approval message's thread
    tell_requester  a note to whoever asked (`note` says which)
    drift_alert     a change made outside the bot, in the approval channel (its subject
                    is `drift-<id>`, not a request: bot.readings)

Slack jobs of a request wait while its approval post is still open: a thread reply
needs the message's ts. Jobs render the request as it is when they run, so an update
that runs late never shows an older state than the one stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    POST = "post_approval"
    APPLY = "okx_apply"
    UPDATE = "update_message"
    THREAD = "thread_reply"
    TELL = "tell_requester"
    DRIFT_ALERT = "drift_alert"


class Note(StrEnum):
    """Which note a tell_requester job sends."""

    RESULT = "result"  # the final state of the request
    POSTED = "posted"  # the approval message is up (after a retry: the command's own
    #                    reply could only say it was not posted yet)
    NOT_POSTED = "not_posted"  # it never will be (the channel refuses the bot)
    SUPERSEDED = "superseded"  # a request for the opposite value took its place


ANNOUNCE = (Kind.UPDATE, Kind.THREAD, Kind.TELL)  # a final state, told everywhere
DRIFT_SUBJECT = "drift-"  # a job's request_id for a drift's alert: drift-<id>


def drift_subject(drift_id: int) -> str:
    return f"{DRIFT_SUBJECT}{drift_id}"


def drift_of(subject: str) -> int | None:
    """The drift a job belongs to (None: it belongs to a request)."""
    number = subject.removeprefix(DRIFT_SUBJECT)
    return int(number) if number != subject and number.isdigit() else None

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Job:
    id: int
    request_id: str
    kind: Kind
    note: str
    attempts: int  # including the one now running
    owner: str = ""
    resumed: bool = False  # the attempt before this one was cut off (crash, shutdown)

    @property
    def is_retry(self) -> bool:
        """An earlier attempt ran (or was cut short by a crash) before this one."""
        return self.attempts > 1


LEASE_SECONDS = 15.0  # AUTOREPAY_LEASE_SECONDS's default


class Lost(Exception):
    """The job is no longer this worker's (its lease ran out and another took it over):
    stop without recording anything; the new holder does the work."""


class Unconfirmed(Exception):
    """The job could not be confirmed as this worker's (the database didn't answer) right
    before its OKX write: nothing was sent; try again later, as after any failure."""


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 0.5, 1, 2, 4, 8, then
    10 for good. A failed Slack call is tried again within 1 s and then at least every
    10 s, so messages arrive within seconds of Slack coming back."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** max(0, attempts - 1))
