"""The job table's claiming rules, on the store itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.accounts import Account
from bot.approvals import ChangeRequest, Rules, Status, Verdict
from bot.jobs import Kind
from bot.store import Store
from tests.conftest import ON_BOTH_BACKENDS

pytestmark = ON_BOTH_BACKENDS


@pytest.fixture
async def store(database: Path | str) -> AsyncIterator[Store]:
    opened = await Store.open(database)
    yield opened
    await opened.aclose()


def request(request_id: str = "ar-1") -> ChangeRequest:
    return ChangeRequest(id=request_id, requester="UALICE", account=Account.LIVE, desired=True,
                         status=Status.PENDING, created_at=1.0, expires_at=901.0,
                         origin_channel="COPS", approval_channel="CAPPR")


async def test_jobs_waiting_for_the_approval_post_do_not_make_the_worker_spin(
        store: Store) -> None:
    """Seen in review: a due thread reply behind a post retried in 10 s made next_due lie
    in the past, and the worker loop claimed nothing, without pause."""
    await store.add(request(), now=1.0)
    [post] = await store.jobs.claim(1.0, "w1", 15.0, 10)
    await store.jobs.retry(post, 1000.0, "Slack down")
    await store.expire_due(901.0)  # announcement jobs, due at once, wait for the post
    assert await store.jobs.claim(902.0, "w1", 15.0, 10) == []
    assert await store.jobs.next_due() == 1000.0


async def test_two_workers_never_hold_the_same_job(store: Store) -> None:
    await store.add(request(), now=1.0)
    first = await store.jobs.claim(1.0, "w1", 15.0, 10)
    assert [job.kind for job in first] == [Kind.POST]
    assert await store.jobs.claim(1.0, "w2", 15.0, 10) == []
    [again] = await store.jobs.claim(16.0, "w2", 15.0, 10)  # the lease ran out
    assert again.id == first[0].id and again.attempts == 2 and again.resumed
    assert not await store.jobs.done(first[0], 17.0)  # no longer w1's to finish
    assert await store.jobs.done(again, 17.0)


async def test_message_updates_of_one_request_run_one_at_a_time_in_order(
        store: Store) -> None:
    await store.add(request(), now=1.0)
    [post] = await store.jobs.claim(1.0, "w1", 15.0, 10)
    await store.posted(post, "CAPPR", "1.1", 2.0)
    await store.decide("ar-1", "UBOB", True, 3.0, Rules(approvals_required=3))
    await store.decide("ar-1", "UCAROL", True, 3.0, Rules(approvals_required=3))
    claimed = await store.jobs.claim(4.0, "w1", 15.0, 10)
    assert [job.kind for job in claimed] == [Kind.UPDATE]  # the second waits
    assert await store.jobs.claim(4.0, "w2", 15.0, 10) == []
    await store.jobs.done(claimed[0], 5.0)
    [second] = await store.jobs.claim(5.0, "w2", 15.0, 10)
    assert second.kind is Kind.UPDATE and second.id > claimed[0].id


async def test_a_crash_is_remembered_past_a_later_failed_try(store: Store) -> None:
    """Found by the property test: a crash, then one failed try, and the requester whose
    command reply died with the process was never told the message went up."""
    await store.add(request(), now=1.0)
    await store.jobs.claim(1.0, "before-crash", 15.0, 10)  # the process dies
    await store.jobs.release_all()  # restart
    [post] = await store.jobs.claim(2.0, "after", 15.0, 10)
    assert post.resumed
    await store.jobs.retry(post, 2.5, "Slack answered service_unavailable")
    [post] = await store.jobs.claim(3.0, "after", 15.0, 10)
    assert post.resumed
    await store.posted(post, "CAPPR", "123.456", now=3.0)
    assert [(job.kind, job.note) for job in await store.jobs.open_jobs()] == [
        (Kind.TELL, "posted")]


async def test_a_crash_while_a_job_waits_for_its_retry_counts_as_a_crash(
        store: Store) -> None:
    await store.add(request(), now=1.0)
    [post] = await store.jobs.claim(1.0, "w1", 15.0, 10)
    await store.jobs.retry(post, 1.5, "Slack answered fatal_error")  # then the process dies
    await store.jobs.release_all()  # restart
    [post] = await store.jobs.claim(2.0, "w2", 15.0, 10)
    assert post.resumed


async def test_the_approving_click_takes_the_okx_job_in_its_own_transaction(
        store: Store) -> None:
    await store.add(request(), now=1.0)
    [post] = await store.jobs.claim(1.0, "w1", 15.0, 10)
    await store.posted(post, "CAPPR", "1.1", 2.0)
    decided = await store.decide_claiming("ar-1", "UBOB", True, 3.0, Rules(),
                                          claimant=("w1", 15.0))
    assert decided is not None
    outcome, apply = decided
    assert outcome.verdict is Verdict.APPROVED
    assert apply is not None and apply.kind is Kind.APPLY and apply.owner == "w1"
    assert [job.kind for job in await store.jobs.claim(3.0, "w2", 15.0, 10)] == [
        Kind.UPDATE]  # the OKX job is not up for grabs while its lease runs
    [taken_over] = await store.jobs.claim(18.0, "w2", 15.0, 10, [Kind.APPLY])
    assert taken_over.id == apply.id and taken_over.resumed  # w1 died with it


async def test_a_worker_whose_job_was_taken_over_cannot_confirm_it(store: Store) -> None:
    """Asked right before an OKX write: a paused worker finds out it lost the job."""
    await store.add(request(), now=1.0)
    decided = await store.decide_claiming("ar-1", "UBOB", True, 2.0, Rules(),
                                          claimant=("w1", 15.0))
    assert decided is not None and decided[1] is not None
    job = decided[1]
    assert await store.jobs.confirm(job, until=20.0)  # still w1's; the lease now ends at 20
    assert await store.jobs.claim(19.9, "w2", 15.0, 10, [Kind.APPLY]) == []
    [taken] = await store.jobs.claim(20.0, "w2", 15.0, 10, [Kind.APPLY])  # ran out: w2's
    assert not await store.jobs.confirm(job, until=40.0)
    assert await store.jobs.confirm(taken, until=40.0)
    assert await store.jobs.done(taken, 21.0)
    assert not await store.jobs.confirm(taken, until=50.0)  # an ended job is nobody's
