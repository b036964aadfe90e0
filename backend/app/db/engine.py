"""The database: one way to run work in a transaction, `await db.read(work)` / `db.write(work)`.

`work` is a plain function of a SQLAlchemy `Connection`; each backend runs it the fastest way that
is still safe (figures from `make bench` on this 2-vCPU machine, one uvicorn worker, wrk -c32):

- **SQLite reads run on the event loop.** In WAL mode a reader never waits for a writer, and a
  point read takes tens of microseconds: less than handing it to a thread. Measured on one-row
  reads: ~800 req/s through aiosqlite or a worker thread (a thread hop per statement, or GIL
  ping-pong per request) against ~3,100 req/s inline.
- **SQLite writes run in one worker thread per transaction** with the standard `sqlite3` driver:
  a writer may wait for the write lock (`BEGIN IMMEDIATE` + busy timeout), and that wait must not
  block the loop. Taking the lock up front matters: a transaction that read first and wrote later
  could be refused ("database is locked") instead of waiting.
- **PostgreSQL**: asyncpg on the event loop, the same function run through `run_sync`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["Database", "Work"]

T = TypeVar("T")
Work = Callable[[Connection], T]

_SQLITE_BUSY_TIMEOUT_MS = 10_000


class Database:
    """Owns the engine; runs read and write transactions.

    Statement parameters are hidden from SQLAlchemy's logs and exception messages: they include
    password hashes and refresh-token hashes, which have no business in a log line.
    """

    def __init__(self, database_url: str):
        url = make_url(database_url)
        backend = url.get_backend_name()
        self.is_sqlite = backend == "sqlite"
        self._sqlite: Engine | None = None
        self._postgres: AsyncEngine | None = None
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            self._sqlite = create_engine(
                url.set(drivername="sqlite+pysqlite"), hide_parameters=True
            )
            _configure_sqlite(self._sqlite)
        elif backend == "postgresql":
            self._postgres = create_async_engine(
                url.set(drivername="postgresql+asyncpg"), pool_pre_ping=True, hide_parameters=True
            )
        else:
            raise ValueError(f"DATABASE_URL must be sqlite or postgresql, not {backend!r}")

    async def read(self, work: Work[T]) -> T:
        """Run `work` in a read-only transaction and return its result. Keep it to a few
        indexed statements: on SQLite it runs on the event loop."""
        if self._sqlite is not None:
            with self._sqlite.begin() as conn:
                return work(conn)
        return await self._run_postgres(work)

    async def write(self, work: Work[T]) -> T:
        """Run `work` in a write transaction; it commits when `work` returns, else rolls back."""
        if self._sqlite is not None:
            engine = self._sqlite.execution_options(sqlite_begin="BEGIN IMMEDIATE")

            def in_one_thread() -> T:
                with engine.begin() as conn:
                    return work(conn)

            # Not abandoned on cancellation: a transaction that started also finishes.
            return await anyio.to_thread.run_sync(in_one_thread)
        return await self._run_postgres(work)

    async def _run_postgres(self, work: Work[T]) -> T:
        assert self._postgres is not None  # noqa: S101 -- one of the two engines is always set
        async with self._postgres.begin() as conn:
            return await conn.run_sync(work)

    async def dispose(self) -> None:
        if self._sqlite is not None:
            self._sqlite.dispose()
        if self._postgres is not None:
            await self._postgres.dispose()


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own implicit BEGIN is off (isolation_level=None) so that SQLAlchemy's "begin"
    # event decides how each transaction starts (SQLAlchemy's documented pysqlite recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
