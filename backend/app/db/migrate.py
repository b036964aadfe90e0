"""Apply the Alembic migrations: on start-up of the embedded default and from `myideas migrate`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from backend.app.db.engine import Database

__all__ = ["upgrade_to_head"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_to_head(database: Database) -> None:
    """Create or upgrade the schema in one transaction (both backends have transactional DDL)."""
    await database.write(_upgrade)
