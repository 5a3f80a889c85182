"""Named accounts: requests.demo and requests.reason, and no fixed list of account names.

Requests from before keep their meaning: `live` was the live account and `demo` the
demo-trading one, so `demo` becomes 1 exactly for the rows of the account named demo.
The CHECK that allowed only those two names goes. PostgreSQL drops it by name; SQLite
can't drop a constraint, so the table is made again without it and the rows copied
(the store runs this with foreign keys off: decisions and jobs point at the table).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "status IN ('pending', 'approved')"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        remake_without_check(bind)
    else:
        op.execute("ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_account_check")
        op.add_column("requests", sa.Column("demo", sa.Integer, nullable=False,
                                            server_default=sa.text("0")))
        op.add_column("requests", sa.Column("reason", sa.Text, nullable=False,
                                            server_default=""))
        op.execute("UPDATE requests SET demo = 1 WHERE account = 'demo'")


def remake_without_check(bind: sa.Connection) -> None:
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes("requests")}
    old = [column["name"] for column in sa.inspect(bind).get_columns("requests")]
    op.create_table(
        "requests_new",
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
        sa.Column("announced", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("superseded_by", sa.Text, nullable=False, server_default=""),
        sa.Column("demo", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
    )
    columns = ", ".join(old)
    op.execute(f"INSERT INTO requests_new ({columns}, demo) "
               f"SELECT {columns}, account = 'demo' FROM requests")
    op.drop_table("requests")
    op.rename_table("requests_new", "requests")
    op.create_index("requests_by_status", "requests", ["status", "expires_at"])
    if "one_open_request_per_account" in indexes:
        op.create_index("one_open_request_per_account", "requests", ["account"],
                        unique=True, sqlite_where=sa.text(OPEN))
    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        raise RuntimeError(f"foreign keys broken after remaking requests: {problems[:3]}")
