"""Alembic environment: runs on the connection `backend.app.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from backend.app.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    # Plain `alembic` CLI use (autogenerate during development): a synchronous SQLite URL.
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///data/myideas.db"
    with create_engine(url).connect() as sync_connection:
        context.configure(connection=sync_connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
