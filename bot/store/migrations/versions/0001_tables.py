"""The three tables: requests, decisions, audit.

A database made before alembic (the old `PRAGMA user_version` migrations) has them
already: then this revision leaves them as they are and only gets stamped.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "requests" not in present:
        op.create_table(
            "requests",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("requester", sa.Text, nullable=False),
            sa.Column("account", sa.Text, nullable=False),
            sa.Column("desired", sa.Integer, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
            sa.Column("origin_channel", sa.Text, nullable=False),
            sa.Column("approval_channel", sa.Text, nullable=False, server_default=""),
            sa.Column("approval_ts", sa.Text, nullable=False, server_default=""),
            sa.Column("decided_by", sa.Text, nullable=False, server_default=""),
            sa.Column("result", sa.Integer),
            sa.Column("error_code", sa.Text, nullable=False, server_default=""),
            sa.Column("error_text", sa.Text, nullable=False, server_default=""),
            sa.Column("okx_uid", sa.Text, nullable=False, server_default=""),
            sa.Column("okx_label", sa.Text, nullable=False, server_default=""),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.CheckConstraint("account IN ('live', 'demo')"),
        )
        op.create_index("requests_by_status", "requests", ["status", "expires_at"])
    if "decisions" not in present:
        op.create_table(
            "decisions",
            sa.Column("request_id", sa.Text, sa.ForeignKey("requests.id"), primary_key=True),
            sa.Column("user_id", sa.Text, primary_key=True),
            sa.Column("approve", sa.Integer, nullable=False),
            sa.Column("at", sa.Float, nullable=False),
        )
    if "audit" not in present:
        op.create_table(
            "audit",
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.Float, nullable=False),
            sa.Column("event", sa.Text, nullable=False),
            sa.Column("actor", sa.Text, nullable=False, server_default=""),
            sa.Column("request_id", sa.Text, nullable=False, server_default=""),
            sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
            sqlite_autoincrement=True,
        )
