"""The readings and drifts tables (bot.readings): queries run in the caller's
transaction, so a reading is recorded together with whatever else its decision writes
(a drift, its audit event and alert job; a change's result and its jobs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.accounts import Account
from bot.approvals import ChangeRequest, Status
from bot.jobs import Kind
from bot.readings import Drift, Reading, Source
from bot.store.schema import drifts, jobs, readings, requests
from okx import AccountConfig
from okx.errors import outcome_uncertain


def _this(account: Account) -> list[sa.ColumnElement[bool]]:
    return [readings.c.account == account.name, readings.c.demo == int(account.demo)]


async def current(db: AsyncConnection, account: Account) -> Any:
    """The account's readings row (None: never read)."""
    return (await db.execute(sa.select(readings).where(*_this(account)))).first()


async def record(db: AsyncConnection, account: Account, *, uid: str,
                 auto_repay: bool | None, at: float, source: Source) -> None:
    """Write the account's reading (a new row, or over the old one), one version on."""
    values = {"uid": uid, "auto_repay": None if auto_repay is None else int(auto_repay),
              "read_at": at, "source": source.value}
    updated = await db.execute(readings.update().where(*_this(account))
                               .values(version=readings.c.version + 1, **values))
    if not updated.rowcount:
        await db.execute(readings.insert().values(account=account.name,
                                                  demo=int(account.demo), version=1,
                                                  **values))


async def record_change(db: AsyncConnection, request: ChangeRequest, at: float) -> None:
    """What the bot's own finished change says of the account: the state OKX confirmed
    (or read back); unknown after a write that may or may not have happened, so the
    next read is a baseline and the bot never alerts on its own write. A refused write
    changed nothing: the reading stays."""
    if request.status is Status.DONE or (request.status is Status.FAILED
                                         and request.result is not None):
        state: bool | None = request.result
    elif request.status is Status.FAILED and outcome_uncertain(request.error_code):
        state = None
    else:
        return
    await record(db, request.account, uid=request.okx_uid, auto_repay=state, at=at,
                 source=Source.CHANGE)
    if request.okx_uid:  # other names for the same OKX account (one key, two names)
        await db.execute(readings.update().where(
            readings.c.uid == request.okx_uid, readings.c.demo == int(request.account.demo),
            readings.c.account != request.account.name).values(
                auto_repay=None if state is None else int(state), read_at=at,
                source=Source.CHANGE.value, version=readings.c.version + 1))


async def changing(db: AsyncConnection, account: Account, uid: str = "") -> bool:
    """Whether a change of the bot's is in flight for the account, or for another name
    of the same OKX account (`uid`): an approved request, or an OKX job not yet ended."""
    same = sa.and_(requests.c.account == account.name, requests.c.demo == int(account.demo))
    alias = sa.and_(requests.c.okx_uid == uid, requests.c.demo == int(account.demo))
    mine = sa.or_(same, alias) if uid else same
    approved = sa.exists().where(mine, requests.c.status == Status.APPROVED.value)
    writing = sa.exists().where(mine, jobs.c.request_id == requests.c.id,
                                jobs.c.kind == Kind.APPLY.value, jobs.c.done_at.is_(None))
    return bool((await db.execute(sa.select(sa.or_(approved, writing)))).scalar())


async def add_drift(db: AsyncConnection, account: Account, config: AccountConfig,
                    was: Any, now: float) -> Drift:
    """Store a drift from the reading `was` (its row) to `config`."""
    values = {"account": account.name, "demo": int(account.demo), "uid": config.uid,
              "auto_repay": int(config.auto_repay), "was": int(was.auto_repay),
              "was_at": float(was.read_at), "at": now}
    result = await db.execute(drifts.insert().values(**values))
    drift_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert drift_id is not None
    return Drift(int(drift_id), account, config.uid, config.auto_repay,
                 bool(was.auto_repay), float(was.read_at), now)


def _of(table: sa.Table, accounts: Sequence[Account]) -> sa.ColumnElement[bool]:
    """Rows of these accounts (by name and LIVE/DEMO: a demo account never shows as the
    live one of the same name)."""
    return sa.or_(sa.false(), *(sa.and_(table.c.account == a.name,
                                        table.c.demo == int(a.demo)) for a in set(accounts)))


async def known(db: AsyncConnection, accounts: Sequence[Account]) -> dict[Account, Reading]:
    """The known readings (state not NULL) of these accounts."""
    rows = (await db.execute(sa.select(readings).where(
        _of(readings, accounts), readings.c.auto_repay.is_not(None)))).all()
    return {Account(row.account, bool(row.demo)): Reading(
        Account(row.account, bool(row.demo)), row.uid, bool(row.auto_repay),
        float(row.read_at), Source(row.source)) for row in rows}


async def newest_drifts(db: AsyncConnection, accounts: Sequence[Account], count: int,
                        ) -> list[Drift]:
    """The last `count` drifts of these accounts, newest first."""
    rows = (await db.execute(sa.select(drifts).where(_of(drifts, accounts))
                             .order_by(drifts.c.at.desc(), drifts.c.id.desc())
                             .limit(count))).all()
    return [drift_from(row) for row in rows]


async def one_drift(db: AsyncConnection, drift_id: int) -> Drift | None:
    row = (await db.execute(sa.select(drifts).where(drifts.c.id == drift_id))).first()
    return None if row is None else drift_from(row)


def drift_from(row: Any) -> Drift:
    return Drift(int(row.id), Account(row.account, bool(row.demo)), row.uid,
                 bool(row.auto_repay), bool(row.was), float(row.was_at), float(row.at),
                 row.alert_ts)
