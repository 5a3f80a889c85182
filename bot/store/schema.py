"""The tables as they are now (the migrations in bot/store/migrations/ make them)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

requests = sa.Table(
    "requests", metadata,
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
    # The final state has been put into Slack (message, thread, requester).
    sa.Column("announced", sa.Integer, nullable=False, server_default=sa.text("0")),
    # The request that took this one's place (status "superseded").
    sa.Column("superseded_by", sa.Text, nullable=False, server_default=""),
    # A demo-trading account (its name alone doesn't say: AUTOREPAY_ACCOUNTS names them).
    sa.Column("demo", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
)
sa.Index("requests_by_status", requests.c.status, requests.c.expires_at)
# One open request per account (SPEC §3.3): the store checks first and says why; this
# index makes a race between two processes fail instead of leaving two open requests.
OPEN_STATUSES = ("pending", "approved")
sa.Index("one_open_request_per_account", requests.c.account, unique=True,
         sqlite_where=requests.c.status.in_(OPEN_STATUSES),
         postgresql_where=requests.c.status.in_(OPEN_STATUSES))

decisions = sa.Table(
    "decisions", metadata,
    sa.Column("request_id", sa.Text, sa.ForeignKey("requests.id"), primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("approve", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    # The order decisions were made in, per request (1, 2, …; 0 before migration 0005).
    sa.Column("seq", sa.Integer, nullable=False, server_default=sa.text("0")),
)

audit = sa.Table(
    "audit", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False, server_default=""),
    sa.Column("request_id", sa.Text, nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    sqlite_autoincrement=True,
)

# Every side effect of a decision (SPEC §7): written in the transaction of the decision,
# run by bot.worker. `lease_until` > now: a worker is running it; `done_at` set: finished
# (`error` says why when it ended without doing its work). `request_id` is the job's
# subject: a request's ID, or `drift-<id>` for a drift's alert (so no foreign key).
jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    # An earlier attempt was cut off (crash, shutdown): whoever waited on it is gone.
    sa.Column("resumed", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("lease_until", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("owner", sa.Text, nullable=False, server_default=""),
    sa.Column("done_at", sa.Float),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sqlite_autoincrement=True,
)
sa.Index("open_jobs", jobs.c.due_at, sqlite_where=jobs.c.done_at.is_(None),
         postgresql_where=jobs.c.done_at.is_(None))
sa.Index("jobs_by_request", jobs.c.request_id)

# Timers that run on one replica at a time (the expiry sweep, the drift watch): the
# replica named `owner` holds the turn until `until`, renewing it while it runs.
turns = sa.Table(
    "turns", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("until", sa.Float, nullable=False),
)

# The last state the bot knew of each account's auto repay (bot.readings): from a read or
# its own change. `auto_repay` NULL: unknown (a write whose outcome is unknown), so the
# next read is a fresh baseline. `version` counts the row's writes: a read recorded only
# if nothing was recorded while it was on the wire.
readings = sa.Table(
    "readings", metadata,
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("demo", sa.Integer, primary_key=True),
    sa.Column("uid", sa.Text, nullable=False, server_default=""),
    sa.Column("auto_repay", sa.Integer),
    sa.Column("read_at", sa.Float, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("0")),
)

# Changes made outside the bot, as the drift watch found them; `alert_ts` the alert's
# message in the approval channel once posted.
drifts = sa.Table(
    "drifts", metadata,
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
sa.Index("drifts_by_account", drifts.c.account, drifts.c.at)
