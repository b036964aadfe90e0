"""One error body everywhere, including the framework's own 404, 405, 422 and 500."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from backend.app.main import create_app
from backend.tests.api.test_auth import assert_error
from backend.tests.conftest import POSTGRES_ADMIN_DSN


class TestFrameworkErrors:
    async def test_unknown_route_is_404_error_body(self, client):
        assert_error(await client.get("/nope"), 404, "not_found")

    async def test_wrong_method_is_405_error_body(self, client):
        assert_error(await client.put("/auth/me"), 405, "method_not_allowed")

    async def test_malformed_json_is_422_error_body(self, api):
        await api.fetch_csrf()

        response = await api.client.post(
            "/auth/signin",
            content=b'{"email": "a@example.com", "password": "hunter2-secret',
            headers={"X-CSRF-Token": api.csrf_token, "Content-Type": "application/json"},
        )

        assert_error(response, 422, "validation_error")
        assert "hunter2-secret" not in response.text

    async def test_unhandled_exception_is_500_error_body_without_internals(self, app):
        """A crash answers the standard body and says nothing about its cause."""

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("internal detail with secret-ish text")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/boom")

        assert_error(response, 500, "internal_error")
        assert "secret-ish" not in response.text


class TestHealth:
    async def test_health_is_ok_with_database(self, client):
        response = await client.get("/health")

        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}

    @pytest.mark.postgres
    async def test_health_is_503_when_database_is_down(self, make_settings):
        """The database disappears under a running app: 503 with the error body."""
        name = f"myideas_down_{uuid.uuid4().hex[:8]}"
        await _admin(f'CREATE DATABASE "{name}"')
        app = create_app(make_settings(database_url=f"postgresql://postgres@127.0.0.1:5432/{name}"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                before = await client.get("/health")
                await _admin(f'DROP DATABASE "{name}" WITH (FORCE)')
                after = await client.get("/health")

        assert before.status_code == 200
        body = assert_error(after, 503, "database_unavailable")
        assert body["details"]["database"] == "down"


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
