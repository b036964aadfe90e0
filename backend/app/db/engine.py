"""The database: one way to run work in a transaction, `await db.read(work)` / `db.write(work)`.

`work` is a plain function of a SQLAlchemy `Connection`; each backend runs it the fastest way that
is still safe (figures from `make bench` on this 2-vCPU machine, one uvicorn worker, wrk -c32):

- **SQLite reads run on the event loop**, on a connection of their own. In WAL mode a reader never
  waits for a writer, and a point read takes tens of microseconds: less than handing it to a
  thread (~800 req/s through aiosqlite or a worker thread against ~3,100 req/s inline). Reads never
  overlap (each runs to the end before the loop moves on), so the read pool is never empty; should
  a read ever meet a lock, its busy timeout is a few milliseconds, so the loop cannot freeze.
- **SQLite writes run one at a time, each in a worker thread**, with the standard `sqlite3`
  driver. SQLite has one writer anyway; queueing the writers of this process on an async lock
  (instead of letting each take a pooled connection and sleep in SQLite's busy handler) keeps the
  loop and the read pool free while another process holds the write lock. `BEGIN IMMEDIATE` takes
  the lock up front: a transaction that read first and wrote later could be refused instead of
  waiting.
- **PostgreSQL**: asyncpg on the event loop, the same function run through `run_sync`.

**The failure policy lives here.** A database that cannot be reached, refuses a connection, or does
not answer within `timeout_seconds` (connect, pool, lock or statement) raises `DatabaseUnavailable`,
and nothing else does; callers never see a driver's exception for an outage.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "POOLER_PORT", "Database", "DatabaseUnavailable", "Work"]

T = TypeVar("T")
Work = Callable[[Connection], T]

DEFAULT_TIMEOUT_SECONDS = 5.0
# A read on the event loop that meets a lock gives up at once rather than stall every request.
_SQLITE_READ_BUSY_TIMEOUT_MS = 50


# Supabase's pooler (Supavisor) in transaction mode listens on 6543 and, like PgBouncer, gives each
# transaction any server connection: a statement asyncpg prepared and cached on one is unknown on
# the next. There, no statement cache, and a unique name for each prepared statement.
POOLER_PORT = 6543
_NO_PREPARED_STATEMENTS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
}


class DatabaseUnavailable(Exception):
    """The database cannot be reached, refused the connection, or did not answer in time.

    A retry later may succeed; `retry_after_seconds` says when to try.
    """

    def __init__(self, reason: str, *, retry_after_seconds: int = 1):
        super().__init__(reason)
        self.retry_after_seconds = retry_after_seconds


def _is_outage(exc: BaseException) -> bool:
    """Errors that mean "the database is unreachable or busy", not "this statement is wrong"."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError | OSError,
    )


@contextmanager
def _outages_as_unavailable(retry_after_seconds: int) -> Iterator[None]:
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if _is_outage(exc):
            raise DatabaseUnavailable(
                type(exc).__name__, retry_after_seconds=retry_after_seconds
            ) from exc
        raise


class Database:
    """Owns the engines; runs read and write transactions.

    Args:
        database_url: `sqlite:///path` or `postgresql://…`; the driver is chosen here.
        timeout_seconds: the longest a transaction waits for a connection, a lock or an answer
            before `DatabaseUnavailable`.

    Statement parameters are hidden from SQLAlchemy's logs and exception messages: they include
    password hashes and refresh-token hashes, which have no business in a log line.
    """

    def __init__(self, database_url: str, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS):
        url = make_url(database_url)
        backend = url.get_backend_name()
        self.is_sqlite = backend == "sqlite"
        self.timeout_seconds = timeout_seconds
        self._retry_after = max(1, math.ceil(timeout_seconds))
        self._sqlite_reader: Engine | None = None
        self._sqlite_writer: Engine | None = None
        self._write_lock = anyio.Lock()
        self._postgres: AsyncEngine | None = None
        self.uses_prepared_statement_cache = url.port != POOLER_PORT
        self.sqlite_path: Path | None = None
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                self.sqlite_path = Path(url.database)
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            sqlite_url = url.set(drivername="sqlite+pysqlite")
            self._sqlite_reader = create_engine(
                sqlite_url, hide_parameters=True, pool_size=1, max_overflow=4, pool_timeout=0.1
            )
            _configure_sqlite(self._sqlite_reader, busy_timeout_ms=_SQLITE_READ_BUSY_TIMEOUT_MS)
            # One connection: writes of this process are serialized by `_write_lock` anyway.
            self._sqlite_writer = create_engine(
                sqlite_url, hide_parameters=True, pool_size=1, max_overflow=0
            )
            _configure_sqlite(
                self._sqlite_writer, busy_timeout_ms=int(timeout_seconds * 1000), wal=True
            )
        elif backend == "postgresql":
            self._postgres = create_async_engine(
                url.set(drivername="postgresql+asyncpg"),
                pool_pre_ping=True,
                pool_timeout=timeout_seconds,
                hide_parameters=True,
                # asyncpg's own client-side timeouts: for the connect, and for each statement.
                connect_args={
                    "timeout": timeout_seconds,
                    "command_timeout": timeout_seconds,
                    **({} if self.uses_prepared_statement_cache else _NO_PREPARED_STATEMENTS),
                },
            )
        else:
            raise ValueError(f"DATABASE_URL must be sqlite or postgresql, not {backend!r}")

    async def read(self, work: Work[T]) -> T:
        """Run `work` in a read-only transaction and return its result. Keep it to a few
        indexed statements: on SQLite it runs on the event loop.

        Raises:
            DatabaseUnavailable: see the module docstring.
        """
        with _outages_as_unavailable(self._retry_after):
            if self._sqlite_reader is not None:
                with self._sqlite_reader.begin() as conn:
                    return work(conn)
            return await self._run_postgres(work)

    async def write(self, work: Work[T]) -> T:
        """Run `work` in a write transaction; it commits when `work` returns, else rolls back.

        Raises:
            DatabaseUnavailable: see the module docstring; on SQLite also when another process
                holds the write lock for longer than the timeout.
        """
        with _outages_as_unavailable(self._retry_after):
            if self._sqlite_writer is not None:
                return await self._write_sqlite(self._sqlite_writer, work)
            return await self._run_postgres(work)

    async def _write_sqlite(self, engine: Engine, work: Work[T]) -> T:
        immediate = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")

        def in_one_thread() -> T:
            with immediate.begin() as conn:
                return work(conn)

        with anyio.move_on_after(self.timeout_seconds) as waiting:
            await self._write_lock.acquire()
        if waiting.cancelled_caught:
            raise DatabaseUnavailable("write queue", retry_after_seconds=self._retry_after)
        try:
            # Not abandoned on cancellation: a transaction that started also finishes.
            return await anyio.to_thread.run_sync(in_one_thread)
        finally:
            self._write_lock.release()

    async def _run_postgres(self, work: Work[T]) -> T:
        assert self._postgres is not None  # noqa: S101 -- one of the two backends is always set
        async with self._postgres.begin() as conn:
            return await conn.run_sync(work)

    async def dispose(self) -> None:
        for engine in (self._sqlite_reader, self._sqlite_writer):
            if engine is not None:
                engine.dispose()
        if self._postgres is not None:
            await self._postgres.dispose()


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int, wal: bool = False) -> None:
    # pysqlite's own implicit BEGIN is off (isolation_level=None) so that SQLAlchemy's "begin"
    # event decides how each transaction starts (SQLAlchemy's documented pysqlite recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching a new file to WAL takes a lock that may be held.
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        if wal:  # WAL is a property of the file; the writer sets it once for every reader
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
