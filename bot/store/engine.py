"""The engine: SQLite (aiosqlite) or PostgreSQL through SQLAlchemy's async engine, and
the alembic migrations that make and keep the schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from bot.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"
WRITE = "autorepay_write"  # execution option: False for read-only transactions
# Execution option for migrations: on SQLite, foreign keys off for that transaction (a
# table can only be changed by making it again, and other tables point at it).
SCHEMA = "autorepay_schema"
SQLITE_BUSY_SECONDS = 10.0
# PostgreSQL: a server that doesn't answer fails a connection attempt after this many
# seconds (and a pooled connection is tested before use), so a command during an outage
# gets "try again" instead of hanging; a transaction left idle (its replica stalled)
# is ended by the server, so its row locks can't hold the other replicas up for long.
POSTGRES_CONNECT_SECONDS = 5
POSTGRES_IDLE_IN_TRANSACTION_MS = 60_000
POSTGRES_POOL = {"pool_size": 8, "max_overflow": 16, "pool_timeout": 10.0}


def database_url(where: Database | Path | str) -> sa.URL:
    """A SQLAlchemy URL: a path means a SQLite file; a string is AUTOREPAY_DATABASE_URL's
    form (postgresql://… or sqlite:///…)."""
    if isinstance(where, Database):
        return where.url
    if isinstance(where, Path):
        return Database.sqlite(where).url
    return Database.parse(where).url


def make_engine(where: Database | Path | str) -> AsyncEngine:
    # aiosqlite and psycopg log every cursor operation, parameters included, at DEBUG: a
    # dozen lines per click that say nothing an operator needs.
    for noisy in ("aiosqlite", "psycopg", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    url = database_url(where)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(
            url, pool_pre_ping=True, hide_parameters=True, **POSTGRES_POOL,
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_SECONDS,
                "application_name": "autorepay-bot",
                "options": "-c idle_in_transaction_session_timeout="
                           f"{POSTGRES_IDLE_IN_TRANSACTION_MS}",
                # A peer that vanished (machine gone, network cut) is noticed in ~30 s.
                "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                "keepalives_count": 3})
    # Pooled connections (each with its own aiosqlite thread, and the pragmas below set
    # once): opening one per transaction cost more than the transaction. They belong to
    # the event loop that opened the store, as the store does.
    engine = create_async_engine(url, poolclass=AsyncAdaptedQueuePool, pool_size=4,
                                 max_overflow=12,
                                 connect_args={"timeout": SQLITE_BUSY_SECONDS})
    sqlite_transactions(engine)
    return engine


def sqlite_transactions(engine: AsyncEngine) -> None:
    """SQLAlchemy's documented recipe for SQLite transactions: the driver emits no BEGIN
    of its own, the engine's "begin" event does — `BEGIN IMMEDIATE` (write lock taken
    now, so two deciders queue instead of both reading the old state), or a plain
    `BEGIN` for reads."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a stored request survives power loss
        cursor.execute("PRAGMA foreign_keys=ON")
        # Each pooled connection keeps its own page cache (2 MB by default, 16 of them):
        # the database is small and the OS caches the file anyway.
        cursor.execute("PRAGMA cache_size=-512")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        options = connection.get_execution_options()
        if options.get(SCHEMA):  # (only outside a transaction does this take effect)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE, True) else "BEGIN")


# pg_advisory_xact_lock keys: (class, id). Replicas starting together take turns on the
# schema; requests for one account are added one replica at a time.
LOCK_CLASS = 0x4152  # "AR"
MIGRATION_LOCK = 1
ACCOUNT_LOCKS = LOCK_CLASS + 1  # with hashtext(account name)


HEAD = "0006"  # the newest migration's revision (a test checks it against alembic's)


def revision(connection: sa.Connection) -> str | None:
    """The schema's alembic revision; None for a database without one."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(connection: sa.Connection) -> None:
    """Bring the schema to the newest alembic revision, on this connection. On
    PostgreSQL under an advisory lock held until the transaction ends: a replica that
    starts while another migrates waits, then finds the schema up to date."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:c, :k)"),
                           {"c": LOCK_CLASS, "k": MIGRATION_LOCK})
    if revision(connection) == HEAD:
        return  # (alembic, some 11 MB of a running bot's memory, is loaded only to migrate)
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
