"""Migrations run by several processes at the same moment: they take turns, none fails."""

from __future__ import annotations

import asyncio
import multiprocessing

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from backend.app.db.engine import Database
from backend.app.db.migrate import MIGRATIONS, upgrade_to_head

PROCESSES = 4


def _migrate_at_the_barrier(database_url: str, barrier, failures) -> None:
    barrier.wait()
    try:
        asyncio.run(upgrade_to_head(database_url))
    except Exception as exc:
        failures.put(repr(exc))


class TestConcurrentMigrations:
    def test_processes_migrating_an_empty_database_at_once_all_succeed(self, empty_database_url):
        """Four processes released by one barrier: no unique violation, no lock error, and one
        schema at head."""
        context = multiprocessing.get_context("spawn")
        barrier, failures = context.Barrier(PROCESSES), context.Queue()
        processes = [
            context.Process(
                target=_migrate_at_the_barrier, args=(empty_database_url, barrier, failures)
            )
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)

        errors = [failures.get() for _ in range(failures.qsize())]
        assert errors == []
        assert [process.exitcode for process in processes] == [0] * PROCESSES
        assert asyncio.run(_revision(empty_database_url)) == _head_revision()


async def _revision(database_url: str) -> str:
    database = Database(database_url)
    try:
        revision: str = await database.read(
            lambda conn: conn.execute(
                sa.text("SELECT version_num FROM alembic_version")
            ).scalar_one()
        )
    finally:
        await database.dispose()
    return revision


def _head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
