"""Apply the Alembic migrations: on start-up of the embedded default and from `myideas migrate`.

Several processes may start at once (`uvicorn --workers 4`, a process manager, several hosts), and
each migrates. They take turns: on PostgreSQL under a transaction-scoped advisory lock, on SQLite
under an exclusive lock on a file beside the database. The first upgrades; the others then find
the schema at head and do nothing.
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from backend.app.db.engine import Database

__all__ = ["MIGRATIONS", "upgrade_to_head"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# An arbitrary constant that names "the schema migration" among advisory locks.
_ADVISORY_LOCK_KEY = 7_244_905_102
# Waiting for another process's migration is part of starting; give it time.
_MIGRATION_TIMEOUT_SECONDS = 120.0


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
        connection.execute(lock, {"key": _ADVISORY_LOCK_KEY})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@asynccontextmanager
async def _file_lock(path: Path | None) -> AsyncIterator[None]:
    if path is None:
        yield
        return
    with path.with_name(path.name + ".migrate-lock").open("a") as lock_file:
        await anyio.to_thread.run_sync(fcntl.flock, lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def upgrade_to_head(database_url: str) -> None:
    """Create or upgrade the schema in one transaction (both backends have transactional DDL)."""
    database = Database(database_url, timeout_seconds=_MIGRATION_TIMEOUT_SECONDS)
    try:
        async with _file_lock(database.sqlite_path):
            await database.write(_upgrade)
    finally:
        await database.dispose()
