"""The SQLite store: durable, migrated at start, one winner per transition."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.approvals import ChangeRequest, Rules, Status, Verdict
from bot.credentials import Account
from bot.store import Store


def request(request_id: str = "ar-1") -> ChangeRequest:
    return ChangeRequest(id=request_id, requester="UALICE", account=Account.DEMO, desired=True,
                         status=Status.PENDING, created_at=1.0, expires_at=901.0,
                         origin_channel="COPS", approval_channel="CAPPR", okx_uid="42")


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.add(request(), now=1.0)
    store.set_message("ar-1", "CAPPR", "123.456", now=2.0)
    store.close()
    reopened = Store(tmp_path / "a.db")  # migrations run again: nothing breaks
    loaded = reopened.get("ar-1")
    assert loaded is not None
    assert loaded.account is Account.DEMO and loaded.approval_ts == "123.456"
    assert loaded.okx_uid == "42"
    assert [e.event for e in reopened.audit_events("ar-1")] == ["requested", "approval_posted"]
    mode = reopened._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_many_threads_one_winner(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.add(request(), now=1.0)
    users = [f"U{n:03d}" for n in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(lambda u: store.decide("ar-1", u, True, 5.0, Rules()), users))
    verdicts = [o.verdict for o in outcomes if o is not None]
    assert verdicts.count(Verdict.APPROVED) == 1
    assert verdicts.count(Verdict.NOT_PENDING) == 23


def test_two_processes_worth_of_connections_one_winner(tmp_path: Path) -> None:
    first, second = Store(tmp_path / "a.db"), Store(tmp_path / "a.db")
    first.add(request(), now=1.0)
    a = first.decide("ar-1", "UBOB", True, 5.0, Rules())
    b = second.decide("ar-1", "UCAROL", True, 5.0, Rules())
    assert a is not None and b is not None
    assert {a.verdict, b.verdict} == {Verdict.APPROVED, Verdict.NOT_PENDING}


def test_finish_only_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.add(request(), now=1.0)
    outcome = store.decide("ar-1", "UBOB", True, 5.0, Rules())
    assert outcome is not None
    done = outcome.request.moved_to(Status.DONE, result=True)
    assert store.finish(done, now=6.0) is True
    assert store.finish(done, now=7.0) is False
    stored = store.get("ar-1")
    assert stored is not None and stored.status is Status.DONE and stored.result is True


def test_expire_due(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.add(request("ar-1"), now=1.0)
    assert store.expire_due(900.0) == []
    [expired] = store.expire_due(901.0)
    assert expired.status is Status.EXPIRED
    assert store.expire_due(2000.0) == []


def test_unknown_request(tmp_path: Path) -> None:
    assert Store(tmp_path / "a.db").decide("nope", "UBOB", True, 1.0, Rules()) is None
