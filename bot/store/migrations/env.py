"""Alembic environment: always run by bot.store on a connection it has opened (inside
its write-locking transaction), never from the alembic command line."""

from __future__ import annotations

from alembic import context

from bot.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
