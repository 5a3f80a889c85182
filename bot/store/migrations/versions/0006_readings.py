"""The drift watch (SPEC §9): what the bot last knew of each account, the drifts it
found, and jobs that belong to a drift rather than to a request.

A drift's alert is a job like any other, its subject `drift-<id>`, so jobs.request_id
can no longer point at requests. PostgreSQL drops the foreign key by the name it has
(reflected: the server chose it); SQLite can't drop a constraint, so the table is made
again without it and the rows copied, as 0004 did with requests (the store runs this
with foreign keys off).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readings",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("demo", sa.Integer, primary_key=True),
        sa.Column("uid", sa.Text, nullable=False, server_default=""),
        sa.Column("auto_repay", sa.Integer),
        sa.Column("read_at", sa.Float, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "drifts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.Text, nullable=False),
        sa.Column("demo", sa.Integer, nullable=False),
        sa.Column("uid", sa.Text, nullable=False, server_default=""),
        sa.Column("auto_repay", sa.Integer, nullable=False),
        sa.Column("was", sa.Integer, nullable=False),
        sa.Column("was_at", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("alert_ts", sa.Text, nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )
    op.create_index("drifts_by_account", "drifts", ["account", "at"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        remake_jobs_without_foreign_key(bind)
    else:
        for key in sa.inspect(bind).get_foreign_keys("jobs"):
            if key["referred_table"] == "requests" and key["name"]:
                op.drop_constraint(key["name"], "jobs", type_="foreignkey")


def remake_jobs_without_foreign_key(bind: sa.Connection) -> None:
    sequence = bind.exec_driver_sql(
        "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").scalar()
    op.create_table(
        "jobs_new",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Text, nullable=False),
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
    columns = ", ".join(c["name"] for c in sa.inspect(bind).get_columns("jobs"))
    op.execute(f"INSERT INTO jobs_new ({columns}) SELECT {columns} FROM jobs")
    op.drop_table("jobs")
    op.rename_table("jobs_new", "jobs")
    if sequence is not None:  # ids are never reused, even of jobs no longer there
        op.execute("DELETE FROM sqlite_sequence WHERE name = 'jobs'")
        op.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', :seq)")
                   .bindparams(seq=int(sequence)))
    op.create_index("open_jobs", "jobs", ["due_at"], sqlite_where=sa.text("done_at IS NULL"))
    op.create_index("jobs_by_request", "jobs", ["request_id"])
