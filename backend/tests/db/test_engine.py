"""The data layer under contention: SQLite's write lock held by another connection."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from backend.app.db.engine import POOLER_PORT, Database
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
