"""The engine: SQLite (aiosqlite) or PostgreSQL through SQLAlchemy's async engine, and
the alembic migrations that make and keep the schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

MIGRATIONS = Path(__file__).parent / "migrations"
WRITE = "autorepay_write"  # execution option: False for read-only transactions
# Execution option for migrations: on SQLite, foreign keys off for that transaction (a
# table can only be changed by making it again, and other tables point at it).
SCHEMA = "autorepay_schema"
SQLITE_BUSY_SECONDS = 10.0


def database_url(where: Path | str) -> str:
    """A SQLAlchemy URL: a path means a SQLite file."""
    if isinstance(where, Path):
        return f"sqlite+aiosqlite:///{where}"
    return where


def make_engine(where: Path | str) -> AsyncEngine:
    # aiosqlite logs every cursor operation, parameters included, at DEBUG: a dozen lines
    # per click that say nothing an operator needs.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    url = sa.make_url(database_url(where))
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
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
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        options = connection.get_execution_options()
        if options.get(SCHEMA):  # (only outside a transaction does this take effect)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE, True) else "BEGIN")


def upgrade(connection: sa.Connection) -> None:
    """Bring the schema to the newest alembic revision, on this connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
