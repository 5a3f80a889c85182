"""The audit log as an export reads it: each event with the account it concerns.

Only reads, in one read transaction (no write lock: the bot may be running on the same
file), and only the columns every version of the schema has, so an export also works on
a database the running bot has not migrated yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.store import Store
from bot.store.schema import audit, requests

# A time is shown rounded to the microsecond (as datetime does), then cut to the
# millisecond. Bounds half a microsecond early compare the same rounded time, so a time
# copied from the export selects exactly the events shown with it (or later).
HALF_MICROSECOND = 5e-7


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: float  # epoch seconds
    event: str
    actor: str  # Slack user ID, or empty for the bot itself
    request_id: str
    account: str  # the request's account; else the event's own; else empty
    detail: dict[str, Any]


async def audit_log(store: Store, *, since: float | None = None, until: float | None = None,
                    account: str | None = None) -> list[AuditRecord]:
    """Events with `since <= at < until` (either bound may be left out), oldest first;
    with `account`, only that account's (any case)."""
    query = (
        sa.select(audit.c.seq, audit.c.at, audit.c.event, audit.c.actor, audit.c.request_id,
                  audit.c.detail, requests.c.account)
        .select_from(audit.outerjoin(requests, sa.and_(audit.c.request_id != "",
                                                       requests.c.id == audit.c.request_id)))
        .order_by(audit.c.seq))
    if since is not None:
        query = query.where(audit.c.at >= since - HALF_MICROSECOND)
    if until is not None:
        query = query.where(audit.c.at < until - HALF_MICROSECOND)
    async with store.reading() as db:
        rows = (await db.execute(query)).all()
    records = [_record(*row) for row in rows]
    if account is None:
        return records
    wanted = account.strip().lower()
    return [r for r in records if r.account.lower() == wanted]


def _record(seq: int, at: float, event: str, actor: str | None, request_id: str | None,
            stored_detail: str | None, request_account: str | None) -> AuditRecord:
    detail = _detail(stored_detail)
    account = request_account
    if account is None:  # no request (or none of that ID): what the event itself says
        named = detail.get("account")
        account = named if isinstance(named, str) else ""
    return AuditRecord(seq=int(seq), at=float(at), event=event, actor=actor or "",
                       request_id=request_id or "", account=account, detail=detail)


def _detail(text: str | None) -> dict[str, Any]:
    """The stored detail object; text that isn't one (never written by the bot) is kept
    whole rather than dropped."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"unparsed": text}
    return value if isinstance(value, dict) else {"unparsed": value}
