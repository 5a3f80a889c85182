"""The job table (SPEC §7), requests.superseded_by and one open request per account.

What the previous version would have finished by its start-up recovery becomes jobs:
approved requests get their OKX job, decided but unannounced ones their announcements,
pending ones without an approval message their post (as a retry, so it first looks for a
message a crash may have posted already). Where an account has more than one open
request, the older pending ones are superseded by the newest open one, so that the
one-open-request index can be made.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = ("pending", "approved")
requests = sa.table(
    "requests", sa.column("id", sa.Text), sa.column("account", sa.Text),
    sa.column("status", sa.Text), sa.column("created_at", sa.Float),
    sa.column("approval_ts", sa.Text), sa.column("announced", sa.Integer),
    sa.column("superseded_by", sa.Text), sa.column("updated_at", sa.Float))


def upgrade() -> None:
    op.add_column("requests", sa.Column("superseded_by", sa.Text, nullable=False,
                                        server_default=""))
    jobs = op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Text, sa.ForeignKey("requests.id"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("resumed", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("lease_until", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("owner", sa.Text, nullable=False, server_default=""),
        sa.Column("done_at", sa.Float),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )
    assert jobs is not None
    op.create_index("open_jobs", "jobs", ["due_at"], sqlite_where=sa.text("done_at IS NULL"),
                    postgresql_where=sa.text("done_at IS NULL"))
    op.create_index("jobs_by_request", "jobs", ["request_id"])
    now = time.time()
    work: list[dict[str, object]] = []
    several_applying = supersede_duplicates(now, work)
    seed_jobs(now, work)
    if work:
        op.bulk_insert(jobs, [{"created_at": now, "due_at": now, "note": "",
                               "attempts": 0, "resumed": 0, **job} for job in work])
    if not several_applying:
        op.create_index("one_open_request_per_account", "requests", ["account"],
                        unique=True, sqlite_where=sa.text("status IN ('pending', 'approved')"),
                        postgresql_where=sa.text("status IN ('pending', 'approved')"))


def supersede_duplicates(now: float, work: list[dict[str, object]]) -> bool:
    """Leave one open request per account; True if some account has several approved
    ones (all of them will still be applied, and the index waits for a later version)."""
    rows = op.get_bind().execute(
        sa.select(requests.c.id, requests.c.account, requests.c.status)
        .where(requests.c.status.in_(OPEN)).order_by(requests.c.created_at)).all()
    several_applying = False
    for account in {row.account for row in rows}:
        mine = [row for row in rows if row.account == account]
        applying = [row for row in mine if row.status == "approved"]
        several_applying |= len(applying) > 1
        keeper = (applying or mine)[-1]
        for row in mine:
            if row.status == "pending" and row.id != keeper.id:
                op.execute(requests.update().where(requests.c.id == row.id).values(
                    status="superseded", superseded_by=keeper.id, updated_at=now))
                work += [{"request_id": row.id, "kind": "update_message"},
                         {"request_id": row.id, "kind": "tell_requester",
                          "note": "superseded"}]
    return several_applying


def seed_jobs(now: float, work: list[dict[str, object]]) -> None:
    rows = op.get_bind().execute(
        sa.select(requests.c.id, requests.c.status, requests.c.approval_ts,
                  requests.c.announced)).all()
    for row in rows:
        if row.status == "approved":
            work.append({"request_id": row.id, "kind": "okx_apply", "attempts": 1,
                         "resumed": 1})
        elif row.status == "pending" and not row.approval_ts:
            work.append({"request_id": row.id, "kind": "post_approval", "attempts": 1,
                         "resumed": 1})
        elif row.status not in OPEN and row.status != "superseded" and not row.announced:
            work += [{"request_id": row.id, "kind": kind}
                     for kind in ("update_message", "thread_reply")]
            work.append({"request_id": row.id, "kind": "tell_requester", "note": "result"})
