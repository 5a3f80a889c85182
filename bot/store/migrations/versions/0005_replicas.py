"""Several replicas: the order of decisions as a number (PostgreSQL has no rowid), and
the turns table for timers that run on one replica at a time.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("seq", sa.Integer, nullable=False,
                                         server_default=sa.text("0")))
    op.create_table(
        "turns",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("until", sa.Float, nullable=False),
    )
