"""requests.announced: the final state has been put into Slack.

Rows from before this column existed were announced by the version that made them. A
database from the old `PRAGMA user_version` migrations at version 2 has the column
already: then nothing changes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("requests")}
    if "announced" in columns:
        return
    op.add_column("requests", sa.Column("announced", sa.Integer, nullable=False,
                                        server_default=sa.text("0")))
    requests = sa.table("requests", sa.column("status", sa.Text),
                        sa.column("announced", sa.Integer))
    op.execute(requests.update().where(requests.c.status.not_in(["pending", "approved"]))
               .values(announced=1))
