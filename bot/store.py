"""SQLite storage: change requests, decisions and the audit log (WAL mode).

Every state change runs in one `BEGIN IMMEDIATE` transaction, so a transition decided by
`approvals.decide()` is applied at most once even with many clicks at the same moment,
and even with two processes on the same file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import approvals
from bot.approvals import ChangeRequest, Outcome, Rules, Status
from bot.credentials import Account

MIGRATIONS = [
    """
    CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        account TEXT NOT NULL CHECK (account IN ('live', 'demo')),
        desired INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        origin_channel TEXT NOT NULL,
        approval_channel TEXT NOT NULL DEFAULT '',
        approval_ts TEXT NOT NULL DEFAULT '',
        decided_by TEXT NOT NULL DEFAULT '',
        result INTEGER,
        error_code TEXT NOT NULL DEFAULT '',
        error_text TEXT NOT NULL DEFAULT '',
        okx_uid TEXT NOT NULL DEFAULT '',
        okx_label TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL
    );
    CREATE INDEX requests_by_status ON requests (status, expires_at);
    CREATE TABLE decisions (
        request_id TEXT NOT NULL REFERENCES requests (id),
        user_id TEXT NOT NULL,
        approve INTEGER NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (request_id, user_id)
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL DEFAULT '',
        request_id TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # announced: the final state has been put into Slack (message, thread, requester).
    # Rows from before this column existed were announced by the version that made them.
    """
    ALTER TABLE requests ADD COLUMN announced INTEGER NOT NULL DEFAULT 0;
    UPDATE requests SET announced = 1 WHERE status NOT IN ('pending', 'approved');
    """,
]


@dataclass(frozen=True)
class AuditEvent:
    at: float
    event: str
    actor: str
    request_id: str
    detail: dict[str, Any]


class Store:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a stored request survives power loss
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    # --- requests -----------------------------------------------------------
    def add(self, request: ChangeRequest, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO requests (id, requester, account, desired, status, created_at,"
                " expires_at, origin_channel, approval_channel, okx_uid, okx_label, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (request.id, request.requester, request.account.value, int(request.desired),
                 request.status.value, request.created_at, request.expires_at,
                 request.origin_channel, request.approval_channel, request.okx_uid,
                 request.okx_label, now))
            self._audit(db, now, "requested", request.requester, request.id,
                        account=request.account.value, desired=request.desired)

    def get(self, request_id: str) -> ChangeRequest | None:
        with self._lock:
            return self._load(self._db, request_id)

    def set_message(self, request_id: str, channel: str, ts: str, now: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE requests SET approval_channel = ?, approval_ts = ?,"
                       " updated_at = ? WHERE id = ?", (channel, ts, now, request_id))
            self._audit(db, now, "approval_posted", "", request_id, channel=channel, ts=ts)

    def decide(self, request_id: str, user: str, approve: bool, now: float,
               rules: Rules) -> Outcome | None:
        """Apply one click atomically; None when there is no such request."""
        with self._transaction() as db:
            request = self._load(db, request_id)
            if request is None:
                return None
            outcome = approvals.decide(request, user, approve, now, rules)
            if outcome.changed:
                self._save_outcome(db, request, outcome, user, approve, now)
            else:
                self._audit(db, now, f"click_refused:{outcome.verdict}", user, request_id)
            return outcome

    def finish(self, request: ChangeRequest, now: float) -> bool:
        """Record the OKX result of an approved request; False if it was finished already."""
        return self._close(request, now, Status.APPROVED)

    def abandon(self, request: ChangeRequest, now: float) -> bool:
        """A pending request whose approval message could not be posted."""
        return self._close(request, now, Status.PENDING)

    def _close(self, request: ChangeRequest, now: float, expected: Status) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE requests SET status = ?, result = ?, error_code = ?, error_text = ?,"
                " okx_uid = ?, okx_label = ?, updated_at = ?"
                " WHERE id = ? AND status = ?",
                (request.status.value, None if request.result is None else int(request.result),
                 request.error_code, request.error_text, request.okx_uid, request.okx_label,
                 now, request.id, expected.value))
            if cursor.rowcount:
                self._audit(db, now, f"okx_{request.status}", "", request.id,
                            result=request.result, code=request.error_code)
            return bool(cursor.rowcount)

    def expire_due(self, now: float) -> list[ChangeRequest]:
        """Move every pending request past its TTL to expired; returns those moved."""
        with self._transaction() as db:
            rows = db.execute("SELECT id FROM requests WHERE status = 'pending'"
                              " AND expires_at <= ?", (now,)).fetchall()
            expired = []
            for row in rows:
                request = self._load(db, row["id"])
                moved = approvals.expire(request, now) if request else None
                if moved is not None:
                    self._set_status(db, moved, now)
                    self._audit(db, now, "expired", "", moved.id)
                    expired.append(moved)
            return expired

    def with_status(self, status: Status) -> list[ChangeRequest]:
        return self._select("status = ?", status.value)

    def unannounced(self) -> list[ChangeRequest]:
        """Decided requests whose outcome never made it into Slack (crash, Slack down)."""
        return self._select("status NOT IN ('pending', 'approved') AND announced = 0")

    def unposted(self) -> list[ChangeRequest]:
        """Pending requests whose approval message was never posted (crash)."""
        return self._select("status = 'pending' AND approval_ts = ''")

    def mark_announced(self, request_id: str, now: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE requests SET announced = 1, updated_at = ? WHERE id = ?",
                       (now, request_id))
            self._audit(db, now, "announced", "", request_id)

    def _select(self, where: str, *args: object) -> list[ChangeRequest]:
        with self._lock:
            rows = self._db.execute(f"SELECT id FROM requests WHERE {where}"
                                    " ORDER BY created_at", args).fetchall()
            return [r for r in (self._load(self._db, row["id"]) for row in rows) if r]

    # --- audit --------------------------------------------------------------
    def audit(self, event: str, actor: str = "", request_id: str = "", /, *, now: float,
              **detail: Any) -> None:
        with self._transaction() as db:
            self._audit(db, now, event, actor, request_id, **detail)

    def audit_events(self, request_id: str | None = None) -> list[AuditEvent]:
        with self._lock:
            query = "SELECT * FROM audit" + (" WHERE request_id = ?" if request_id else "")
            rows = self._db.execute(query + " ORDER BY seq", (request_id,) if request_id else ())
            return [AuditEvent(r["at"], r["event"], r["actor"], r["request_id"],
                               json.loads(r["detail"])) for r in rows]

    # --- helpers ------------------------------------------------------------
    def _save_outcome(self, db: sqlite3.Connection, before: ChangeRequest, outcome: Outcome,
                      user: str, approve: bool, now: float) -> None:
        after = outcome.request
        if outcome.verdict is not approvals.Verdict.EXPIRED:
            db.execute("INSERT OR REPLACE INTO decisions (request_id, user_id, approve, at)"
                       " VALUES (?, ?, ?, ?)", (after.id, user, int(approve), now))
        if after.status is not before.status:
            self._set_status(db, after, now)
        self._audit(db, now, str(outcome.verdict), user, after.id,
                    approvals=len(after.approvers))

    @staticmethod
    def _set_status(db: sqlite3.Connection, request: ChangeRequest, now: float) -> None:
        db.execute("UPDATE requests SET status = ?, decided_by = ?, updated_at = ?"
                   " WHERE id = ?", (request.status.value, request.decided_by, now, request.id))

    @staticmethod
    def _audit(db: sqlite3.Connection, now: float, event: str, actor: str, request_id: str,
               **detail: Any) -> None:
        db.execute("INSERT INTO audit (at, event, actor, request_id, detail)"
                   " VALUES (?, ?, ?, ?, ?)",
                   (now, event, actor, request_id, json.dumps(detail, sort_keys=True)))

    @staticmethod
    def _load(db: sqlite3.Connection, request_id: str) -> ChangeRequest | None:
        row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row is None:
            return None
        approvers = tuple(r["user_id"] for r in db.execute(
            "SELECT user_id FROM decisions WHERE request_id = ? AND approve = 1 ORDER BY at,"
            " rowid", (request_id,)))
        return ChangeRequest(
            id=row["id"], requester=row["requester"], account=Account(row["account"]),
            desired=bool(row["desired"]), status=Status(row["status"]),
            created_at=row["created_at"], expires_at=row["expires_at"],
            origin_channel=row["origin_channel"], approval_channel=row["approval_channel"],
            approval_ts=row["approval_ts"], approvers=approvers, decided_by=row["decided_by"],
            result=None if row["result"] is None else bool(row["result"]),
            error_code=row["error_code"], error_text=row["error_text"],
            okx_uid=row["okx_uid"], okx_label=row["okx_label"])
