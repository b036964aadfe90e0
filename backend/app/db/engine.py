"""The database: one way to run work in a transaction, `await db.read(work)` / `db.write(work)`.

`work` is a plain function of a SQLAlchemy `Connection`; each backend runs it the fastest way that
is still safe (figures from `make bench` on this 2-vCPU machine, one uvicorn worker, wrk -c32):

- **SQLite reads run on the event loop**, on a connection of their own. In WAL mode a reader never
  waits for a writer, and a point read takes tens of microseconds: less than handing it to a
  thread (~800 req/s through aiosqlite or a worker thread against ~3,100 req/s inline). Reads never
  overlap (each runs to the end before the loop moves on), so the read pool is never empty; should
  a read ever meet a lock, its busy timeout is a few milliseconds, so the loop cannot freeze.
- **SQLite writes run one transaction at a time, on the event loop too**, on one held
  connection. SQLite has one writer anyway; the writers of this process queue on an async lock,
  and the writes queued while one transaction runs are committed together by the next (group
  commit, each in its own savepoint: `_commit_together`). `BEGIN IMMEDIATE` takes SQLite's lock up
  front (a transaction that read first and wrote later could be refused instead of waiting); while
  another process holds it, the write waits on the loop (`_begin_immediate`), never in SQLite's
  busy handler, so reads keep answering. Only the commit (the wait for the disk) goes to a
  worker thread: whole transactions there took turns with the loop on the GIL, and a thread that
  asks for it waits up to the 5 ms switch interval each time (each statement releases it), which
  capped refresh at ~600/s with a 50 ms median.
- **PostgreSQL**: asyncpg on the event loop, the same function run through `run_sync`.
- **The point reads every request makes** (the session check, the profile) are `Query` objects:
  written once with SQLAlchemy Core and compiled once per dialect. `fetch_one` runs them on SQLite
  straight on the driver, with SQLAlchemy's own bind and result conversions: its execution
  machinery costs ~80 µs a statement on this machine (pool checkout, execution context, result
  set-up) against ~8 µs for the statement itself, and on a route that costs ~0.25 ms in all that
  difference is most of the route.

**The failure policy lives here.** A database that cannot be reached, refuses a connection, or does
not answer within `timeout_seconds` (connect, pool, lock or statement) raises `DatabaseUnavailable`,
and nothing else does; callers never see a driver's exception for an outage.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
import asyncpg
import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "POOLER_PORT",
    "Database",
    "DatabaseUnavailable",
    "Query",
    "Work",
]

T = TypeVar("T")
Work = Callable[[Connection], T]

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_POOL_SIZE = 10
# A read on the event loop that meets a lock gives up at once rather than stall every request.
_SQLITE_READ_BUSY_TIMEOUT_MS = 50
# A write that finds SQLite's write lock taken by another process tries again this often.
_SQLITE_LOCK_RETRY_SECONDS = 0.005
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


# Supabase's pooler (Supavisor) in transaction mode listens on 6543 and, like PgBouncer, gives each
# transaction any server connection: a statement asyncpg prepared and cached on one is unknown on
# the next. There, no statement cache, and a unique name for each prepared statement.
POOLER_PORT = 6543
_NO_PREPARED_STATEMENTS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4()}__",
}


_NO_STATEMENT_CACHE = {"statement_cache_size": 0}  # the same, for asyncpg's own pool


def _no_number(constant: str) -> None:
    return None


# JSON columns hold JSON: a non-finite number is refused on the way in (JSON has none), and one
# written before that rule existed reads as null, so one old row cannot break a list of users.
_JSON_CODEC: dict[str, Any] = {
    "json_serializer": lambda value: json.dumps(value, allow_nan=False),
    "json_deserializer": lambda text: json.loads(text, parse_constant=_no_number),
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
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        # `fetch_one` on the driver: SQLite locked or unreadable; PostgreSQL's connection
        # failures, shutdowns and cancellations (classes 08, 57), too many connections (53).
        | sqlite3.OperationalError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.OperatorInterventionError
        | asyncpg.InsufficientResourcesError
        | OSError,
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


class Query:
    """A read of one statement, built once with SQLAlchemy Core (bound values as `bindparam`s)
    and compiled once per dialect; run it with `Database.fetch_one`."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: sa.Select[Any]):
        self.statement = statement
        self._compiled: dict[str, _CompiledQuery] = {}

    def compiled_for(self, dialect: sa.Dialect) -> _CompiledQuery:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _CompiledQuery.of(self.statement, dialect)
        return compiled


_REQUIRED = object()  # a `bindparam` that `values` must set


@dataclass(frozen=True, slots=True)
class _CompiledQuery:
    """The driver's SQL and positional parameters (after SQLAlchemy's conversion of each), and
    the conversion of each result column: what SQLAlchemy itself would apply."""

    sql: str
    # Each positional parameter: its `bindparam` name, its value if written into the statement
    # (else `_REQUIRED`), and SQLAlchemy's conversion.
    parameters: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    columns: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(cls, statement: sa.Select[Any], dialect: sa.Dialect) -> _CompiledQuery:
        compiled = statement.compile(dialect=dialect)
        parameters = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            literal = _REQUIRED if bind.required else bind.effective_value
            parameters.append((name, literal, convert))
        return cls(
            sql=compiled.string,
            parameters=tuple(parameters),
            columns=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in statement.selected_columns
            ),
        )

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments: `values` for the `bindparam`s, and the literals."""
        arguments = []
        for name, literal, convert in self.parameters:
            value = values.get(name, literal)
            if value is _REQUIRED:
                raise ValueError(f"no value for the parameter {name!r}")
            arguments.append(convert(value) if convert is not None else value)
        return arguments

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            convert(value) if convert is not None else value
            for convert, value in zip(self.columns, raw, strict=True)
        )


class _QueuedWrite(Generic[T]):
    """A SQLite write waiting for its turn, then its outcome (see `Database._write_sqlite`)."""

    def __init__(self, work: Work[T]):
        self.work = work
        self.taken = False  # picked up by a transaction
        self._result: T | None = None
        self._error: BaseException | None = RuntimeError("the write did not run")

    def run_in_savepoint(self, conn: Connection) -> None:
        # The savepoint straight on the driver: SQLAlchemy's nested transaction costs more than
        # most writes, and the root transaction (SQLAlchemy's) is all it needs to know about.
        driver = conn.connection.driver_connection
        assert driver is not None  # noqa: S101 -- a connection in a transaction has one
        driver.execute("SAVEPOINT queued_write")
        try:
            self._result, self._error = self.work(conn), None
        except Exception as exc:
            self._error = exc
            driver.execute("ROLLBACK TO queued_write")
        driver.execute("RELEASE queued_write")

    def fail(self, exc: BaseException) -> None:
        self._error = exc

    def outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set when there was no error


class Database:
    """Owns the engines; runs read and write transactions.

    Args:
        database_url: `sqlite:///path` or `postgresql://…`; the driver is chosen here.
        timeout_seconds: the longest a transaction waits for a connection, a lock or an answer
            before `DatabaseUnavailable`.
        pool_size: PostgreSQL connections kept open. A fixed number: connections opened for a
            burst and closed after it cost a server process each (a fork and a login, several
            milliseconds), and under steady load SQLAlchemy's overflow did exactly that.

    Statement parameters are hidden from SQLAlchemy's logs and exception messages: they include
    password hashes and refresh-token hashes, which have no business in a log line.
    """

    def __init__(
        self,
        database_url: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        pool_size: int = DEFAULT_POOL_SIZE,
    ):
        url = make_url(database_url)
        backend = url.get_backend_name()
        self.is_sqlite = backend == "sqlite"
        self.timeout_seconds = timeout_seconds
        self._retry_after = max(1, math.ceil(timeout_seconds))
        self._sqlite_reader: Engine | None = None
        self._sqlite_writer: Engine | None = None
        self._sqlite_query_connection: Any = None  # the driver's connection `fetch_one` uses
        self._sqlite_write_connection: Connection | None = None  # see `_write_sqlite`
        self._asyncpg: asyncpg.Pool | None = None  # the pool `fetch_one` uses (PostgreSQL)
        self._asyncpg_opening = anyio.Lock()
        self._pool_size = pool_size
        self._postgres_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._write_lock = anyio.Lock()
        self._queued_writes: list[_QueuedWrite[Any]] = []
        self._postgres: AsyncEngine | None = None
        self.uses_prepared_statement_cache = url.port != POOLER_PORT
        self.sqlite_path: Path | None = None
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                self.sqlite_path = Path(url.database)
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            sqlite_url = url.set(drivername="sqlite+pysqlite")
            self._sqlite_reader = create_engine(
                sqlite_url,
                hide_parameters=True,
                pool_size=2,
                max_overflow=4,
                pool_timeout=0.1,
                **_JSON_CODEC,
            )
            _configure_sqlite(self._sqlite_reader, busy_timeout_ms=_SQLITE_READ_BUSY_TIMEOUT_MS)
            # One connection (`_begin_immediate` holds it): writes queue on `_write_lock` anyway.
            self._sqlite_writer = create_engine(
                sqlite_url, hide_parameters=True, pool_size=1, max_overflow=0, **_JSON_CODEC
            )
            _configure_sqlite(self._sqlite_writer, busy_timeout_ms=0, wal=True)
        elif backend == "postgresql":
            self._postgres = create_async_engine(
                url.set(drivername="postgresql+asyncpg"),
                pool_size=pool_size,
                max_overflow=0,
                pool_pre_ping=True,
                pool_timeout=timeout_seconds,
                hide_parameters=True,
                **_JSON_CODEC,
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

    async def fetch_one(
        self,
        query: Query,
        values: Mapping[str, Any],
        *,
        setup: Sequence[tuple[Query, Mapping[str, Any]]] = (),
    ) -> tuple[Any, ...] | None:
        """The first row of `query` with its `bindparam`s set from `values`, or None; after the
        `setup` statements, in the same transaction. Runs on the driver, on the event loop.

        Raises:
            DatabaseUnavailable: see the module docstring.
        """
        statements = [*setup, (query, values)]
        with _outages_as_unavailable(self._retry_after):
            if self._sqlite_reader is not None:
                return self._fetch_sqlite(statements)
            return await self._fetch_postgres(statements)

    def _fetch_sqlite(
        self, statements: list[tuple[Query, Mapping[str, Any]]]
    ) -> tuple[Any, ...] | None:
        assert self._sqlite_reader is not None  # noqa: S101 -- the caller checked
        if self._sqlite_query_connection is None:
            # Held for the app's life: reads never overlap on the event loop.
            self._sqlite_query_connection = self._sqlite_reader.raw_connection()
        driver = self._sqlite_query_connection.driver_connection
        dialect = self._sqlite_reader.dialect
        if len(statements) > 1:
            driver.execute("BEGIN")
        try:
            for query, values in statements:
                compiled = query.compiled_for(dialect)
                raw = driver.execute(compiled.sql, compiled.arguments(values)).fetchone()
        finally:
            if len(statements) > 1:
                driver.execute("COMMIT")
        return None if raw is None else compiled.row(raw)

    async def _fetch_postgres(
        self, statements: list[tuple[Query, Mapping[str, Any]]]
    ) -> tuple[Any, ...] | None:
        assert self._postgres is not None  # noqa: S101 -- one of the two backends is always set
        pool = await self._asyncpg_pool()
        dialect = self._postgres.dialect
        # One deadline for the wait for a connection and every statement (a timeout per call
        # costs a timer task each: a tenth of this route's time).
        with anyio.fail_after(self.timeout_seconds):
            async with pool.acquire() as conn:
                # One statement is a transaction of its own; more get one around them.
                transaction = (
                    conn.transaction() if len(statements) > 1 else contextlib.nullcontext()
                )
                async with transaction:
                    for query, values in statements:
                        compiled = query.compiled_for(dialect)
                        raw = await conn.fetchrow(compiled.sql, *compiled.arguments(values))
        return None if raw is None else compiled.row(raw)

    async def _asyncpg_pool(self) -> asyncpg.Pool:
        """asyncpg's own pool for `fetch_one`, opened on first use.

        Not SQLAlchemy's: its checkout pings the server first (a round trip), and its
        transactions take two more; a point read here takes one. Connections are not reset on
        release (asyncpg's default `RESET ALL` is another round trip): a connection is returned
        with no transaction open (asyncpg rolls one back), and this app sets session state only
        with `set_config(..., true)`, which ends with the transaction.
        """
        if self._asyncpg is None:
            async with self._asyncpg_opening:
                if self._asyncpg is None:
                    self._asyncpg = await asyncpg.create_pool(
                        self._postgres_dsn,
                        min_size=0,
                        max_size=self._pool_size,
                        timeout=self.timeout_seconds,
                        command_timeout=self.timeout_seconds,
                        init=_decode_json_as_sqlalchemy_does,
                        reset=_keep_connection_as_is,
                        **({} if self.uses_prepared_statement_cache else _NO_STATEMENT_CACHE),
                    )
        return self._asyncpg

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
        """Queue `work`; whoever holds the write lock runs every write queued so far, in one
        transaction (see `_commit_together`)."""
        write = _QueuedWrite(work)
        self._queued_writes.append(write)
        try:
            with anyio.move_on_after(self.timeout_seconds):
                async with self._write_lock:
                    if not write.taken:
                        conn = await self._begin_immediate(engine)
                        await self._commit_together(conn)
        finally:
            if not write.taken:  # timed out or cancelled while queued: it must never run
                self._queued_writes.remove(write)
        if not write.taken:
            raise DatabaseUnavailable("write queue", retry_after_seconds=self._retry_after)
        return write.outcome()

    async def _begin_immediate(self, engine: Engine) -> Connection:
        """The write connection, in a transaction that holds SQLite's write lock.

        While another process holds the lock, SQLite refuses at once (busy timeout 0) and this
        waits on the event loop, never in SQLite's busy handler, which would freeze the loop.
        """
        while True:
            try:
                # One connection, held: the write lock lets one caller at a time use it.
                conn = self._sqlite_write_connection
                if conn is None or conn.invalidated or conn.closed:
                    if conn is not None:
                        conn.close()  # gives its place in the one-connection pool back
                    immediate = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                    conn = self._sqlite_write_connection = immediate.connect()
                conn.begin()
                return conn
            except sa_exc.OperationalError as exc:
                if getattr(exc.orig, "sqlite_errorname", None) not in _SQLITE_BUSY:
                    raise
            await anyio.sleep(_SQLITE_LOCK_RETRY_SECONDS)

    async def _commit_together(self, conn: Connection) -> None:
        """Run every queued write in order in the open transaction, each in a savepoint of its
        own, and commit once, in a worker thread: the loop takes more requests (and queues their
        writes for the next transaction) while the disk syncs. Nothing cancels it half-way.

        Group commit: SQLite writes one transaction at a time and a durable commit waits for
        the disk (fsync), so under concurrent writes the commit, not the statements, sets the
        pace. One commit for all the writes queued meanwhile keeps every write durable before its
        caller hears of it, and a work that raises rolls back its own savepoint only: to each
        caller it is as if its write ran alone, after the ones before it.
        """
        batch, self._queued_writes = self._queued_writes, []
        for write in batch:
            write.taken = True
        try:
            for write in batch:
                write.run_in_savepoint(conn)
            await anyio.to_thread.run_sync(conn.commit)  # shielded: a commit that starts ends
        except Exception as exc:  # the commit failed: nothing was written
            for write in batch:
                write.fail(exc)
            with contextlib.suppress(Exception):
                conn.rollback()

    async def _run_postgres(self, work: Work[T]) -> T:
        assert self._postgres is not None  # noqa: S101 -- one of the two backends is always set
        async with self._postgres.begin() as conn:
            return await conn.run_sync(work)

    async def dispose(self) -> None:
        if self._sqlite_query_connection is not None:
            self._sqlite_query_connection.close()
            self._sqlite_query_connection = None
        if self._sqlite_write_connection is not None:
            async with self._write_lock:  # not while a write uses it
                self._sqlite_write_connection.close()
                self._sqlite_write_connection = None
        if self._asyncpg is not None:
            pool, self._asyncpg = self._asyncpg, None
            try:
                with anyio.fail_after(self.timeout_seconds):
                    await pool.close()
            except Exception:  # a server that does not answer cannot say goodbye either
                pool.terminate()
        for engine in (self._sqlite_reader, self._sqlite_writer):
            if engine is not None:
                engine.dispose()
        if self._postgres is not None:
            await self._postgres.dispose()


async def _decode_json_as_sqlalchemy_does(connection: asyncpg.Connection) -> None:
    """JSON columns come back decoded, as through SQLAlchemy (its asyncpg dialect sets the same
    codecs on its own connections)."""
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_connection_as_is(_connection: asyncpg.Connection) -> None:
    """asyncpg's `reset` hook: nothing to undo (see `Database._asyncpg_pool`)."""


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
