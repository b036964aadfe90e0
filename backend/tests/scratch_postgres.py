"""Scratch databases on the machine's PostgreSQL (127.0.0.1:5432, trust auth), for the tests and
for `make bench`: created empty, dropped afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

__all__ = ["POSTGRES_ADMIN_DSN", "postgres_admin", "scratch_postgres_database"]

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the local server (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(postgres_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def postgres_admin(statement: str) -> str:
    """Run one statement as the server's admin; its first value, as text."""
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        return str(await conn.fetchval(statement))
    finally:
        await conn.close()
