"""The data layer: SQLite's write lock held by another connection, group commit, and
`fetch_one` on the driver."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
import sqlalchemy as sa

from backend.app.db.engine import POOLER_PORT, Database, DatabaseUnavailable, Query
from backend.app.db.migrate import upgrade_to_head
from backend.app.db.tables import identity_sessions, identity_users, utcnow
from backend.app.main import create_app
from backend.tests.helpers import PASSWORD, unique_email
from backend.tests.live_server import live_server
from backend.tests.outage import CuttableProxy

# Long enough that a stalled loop could not go unnoticed, bounded so a failure ends.
HOLD_LIMIT_SECONDS = 15


def _signed_in_headers(base_url: str) -> dict[str, str]:
    with httpx.Client(base_url=base_url) as browser:
        csrf = browser.get("/auth/csrf").json()["csrfToken"]
        credentials = {"email": unique_email(), "password": PASSWORD}
        browser.post("/auth/signup", json=credentials, headers={"X-CSRF-Token": csrf})
        signin = browser.post("/auth/signin", json=credentials, headers={"X-CSRF-Token": csrf})
    return {"Authorization": f"Bearer {signin.json()['accessToken']}"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestSqliteWriteLockHeldElsewhere:
    def test_reads_answer_while_writes_wait_then_get_503(self, make_settings, tmp_path: Path):
        """Another process holds the write lock: twenty writes queue and time out with 503 and
        Retry-After, and meanwhile every read still answers: the server never freezes."""
        app = create_app(make_settings(database_timeout_seconds=1))
        with live_server(app) as base_url:
            auth = _signed_in_headers(base_url)
            holder = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                with ThreadPoolExecutor(max_workers=24) as pool:
                    writes = [
                        pool.submit(
                            httpx.post, f"{base_url}/items", json={"title": "t"}, headers=auth
                        )
                        for _ in range(20)
                    ]
                    reads = [
                        pool.submit(httpx.get, f"{base_url}{path}", headers=auth)
                        for path in ("/items", "/auth/me", "/health")
                    ]
                    # The lock is released only after the reads have answered (or the limit).
                    read_statuses = [
                        read.result(timeout=HOLD_LIMIT_SECONDS).status_code for read in reads
                    ]
                    write_responses = [write.result() for write in writes]
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            after = httpx.post(f"{base_url}/items", json={"title": "t"}, headers=auth)

        assert read_statuses == [200, 200, 200]
        assert {response.status_code for response in write_responses} == {503}
        assert {response.json()["code"] for response in write_responses} == {"database_unavailable"}
        assert all(int(response.headers["retry-after"]) >= 1 for response in write_responses)
        assert after.status_code == 201


@pytest.mark.postgres
class TestBehindSupabasesPooler:
    async def test_on_the_pooler_port_statements_run_without_a_prepared_statement_cache(
        self, postgres_url
    ):
        """Port 6543 (Supavisor's transaction mode): asyncpg takes the no-cache settings, and
        the same statement runs again and again (here through a forwarder on that port)."""
        proxy = CuttableProxy(port=POOLER_PORT)
        await proxy.start()
        database = Database(f"{proxy.database_url}/{postgres_url.rsplit('/', 1)[1]}")
        try:
            answers = [
                await database.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one())
                for _ in range(3)
            ]
        finally:
            await database.dispose()
            await proxy.cut()

        assert answers == [1, 1, 1]
        assert database.uses_prepared_statement_cache is False


class _Refused(Exception):
    pass


async def _sqlite_with_table(tmp_path: Path, **options) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'group.db'}", **options)
    await database.write(
        lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    )
    return database


def _insert(n: int, *, refuse: bool = False):
    def work(conn):
        conn.exec_driver_sql("INSERT INTO t VALUES (?)", (n,))
        if refuse:  # after its own statement ran: only that statement must be undone
            raise _Refused(n)
        return n

    return work


async def _stored(database: Database) -> list[int]:
    rows = await database.read(lambda conn: conn.exec_driver_sql("SELECT n FROM t").all())
    return sorted(row[0] for row in rows)


class TestSqliteGroupCommit:
    """Writes queued while a transaction runs are committed together, each in its own savepoint:
    to each caller, as if its write had run alone."""

    async def test_a_refused_write_undoes_only_itself_among_concurrent_ones(
        self, tmp_path, monkeypatch
    ):
        database = await _sqlite_with_table(tmp_path)
        outcomes: dict[int, object] = {}
        transactions = 0
        commit_together = Database._commit_together

        async def counted(self: Database, conn: sa.Connection) -> None:
            nonlocal transactions
            transactions += 1
            await commit_together(self, conn)

        monkeypatch.setattr(Database, "_commit_together", counted)

        async def write(n: int) -> None:
            try:
                outcomes[n] = await database.write(_insert(n, refuse=n % 3 == 0))
            except _Refused as exc:
                outcomes[n] = exc

        try:
            async with anyio.create_task_group() as writers:
                for n in range(1, 31):
                    writers.start_soon(write, n)
            stored = await _stored(database)
        finally:
            await database.dispose()

        assert stored == [n for n in range(1, 31) if n % 3]
        assert transactions < 30  # committed together, not one transaction per write
        assert all(isinstance(outcomes[n], _Refused) for n in range(3, 31, 3))
        assert all(outcomes[n] == n for n in range(1, 31) if n % 3)

    async def test_a_failed_commit_fails_every_write_of_the_batch(self, tmp_path):
        """Two writes whose transaction cannot start (another connection holds the lock): both
        are 503, neither is stored, and the next write succeeds."""
        database = await _sqlite_with_table(tmp_path, timeout_seconds=0.5)
        holder = sqlite3.connect(tmp_path / "group.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            results = await asyncio.gather(
                database.write(_insert(1)), database.write(_insert(2)), return_exceptions=True
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        try:
            after = await database.write(_insert(3))
            stored = await _stored(database)
        finally:
            await database.dispose()

        assert all(isinstance(result, DatabaseUnavailable) for result in results)
        assert (after, stored) == (3, [3])


class TestFetchOne:
    """`Database.fetch_one` on the driver answers what SQLAlchemy would, on both backends."""

    @pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
    async def test_converts_parameters_and_columns_as_sqlalchemy_does(self, database_url):
        await upgrade_to_head(database_url)
        database = Database(database_url)
        user_id, session_id, now = str(uuid.uuid4()), str(uuid.uuid4()), utcnow()
        query = Query(
            sa.select(
                identity_users.c.id, identity_users.c.user_metadata, identity_sessions.c.not_after
            )
            .select_from(identity_sessions.join(identity_users))
            .where(
                identity_sessions.c.id == sa.bindparam("session_id"),
                identity_sessions.c.not_after > sa.bindparam("now"),
            )
        )

        def insert(conn):
            conn.execute(
                identity_users.insert().values(
                    id=user_id,
                    email=f"{user_id}@example.com",
                    password_hash="x",
                    created_at=now,
                    updated_at=now,
                    user_metadata={"a": [1]},
                )
            )
            conn.execute(
                identity_sessions.insert().values(
                    id=session_id,
                    user_id=user_id,
                    created_at=now,
                    not_after=now + timedelta(hours=1),
                )
            )

        try:
            await database.write(insert)
            found = await database.fetch_one(query, {"session_id": session_id, "now": now})
            expired = await database.fetch_one(
                query, {"session_id": session_id, "now": now + timedelta(hours=2)}
            )
            through_sqlalchemy = await database.read(
                lambda conn: conn.execute(
                    query.statement, {"session_id": session_id, "now": now}
                ).first()
            )
        finally:
            await database.write(
                lambda conn: conn.execute(
                    identity_users.delete().where(identity_users.c.id == user_id)
                )
            )
            await database.dispose()

        assert through_sqlalchemy is not None
        assert found == tuple(through_sqlalchemy)
        assert found == (user_id, {"a": [1]}, now + timedelta(hours=1))
        assert expired is None
