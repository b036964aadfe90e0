"""Fixtures: real SQLite files and a real PostgreSQL database, apps built by `create_app`.

Every app-level test runs once on SQLite and once on PostgreSQL (`database_url` is parametrized),
because the two backends differ exactly where it matters: locking and row-level security.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from backend.app.core.settings import Settings
from backend.app.main import create_app
from backend.app.services import Services
from backend.tests.gotrue_server import gotrue_server, supabase_settings
from backend.tests.helpers import ApiUser, AuthApi
from backend.tests.scratch_postgres import scratch_postgres_database

SPA_ORIGIN = "http://localhost:5173"
_APP_TABLES = "identity_users, identity_sessions, identity_refresh_tokens, user_profile, items"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database for this test session, shared by its tests (each empties the tables)."""
    with scratch_postgres_database("myideas_test") as url:
        yield url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database of the test's own: nothing migrated yet."""
    with scratch_postgres_database("myideas_fresh") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def identity_provider() -> str:
    """The provider the app under test uses; the HTTP contract suites run under both."""
    return "embedded"


# Settings that belong to the identity service: with AUTH_PROVIDER=supabase they configure the
# GoTrue-compatible server the app talks to, not the app.
_IDENTITY_SETTINGS = (
    "refresh_reuse_interval_seconds",
    "access_token_ttl_seconds",
    "session_ttl_seconds",
    "session_idle_timeout_seconds",
    "gotrue_mailer_secure_email_change_enabled",
)
# Settings both need: the lifecycle's mails are sent by the identity service, and the app reads
# the same switches (EMAIL_CONFIRMATION_REQUIRED, SITE_URL, the password minimum).
_SHARED_SETTINGS = (
    "password_min_length",
    "email_confirmation_required",
    "email_confirm_ttl_seconds",
    "password_reset_ttl_seconds",
    "site_url",
    "mail_from",
    "mail_product_name",
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "smtp_username",
    "smtp_password",
    "smtp_timeout_seconds",
)


@pytest.fixture
def make_settings(
    tmp_path: Path, database_url: str, identity_provider: str
) -> Iterator[Callable[..., Settings]]:
    """Settings for a test app; keyword arguments override (generous rate limits by default).

    With the `supabase` provider each call also starts a GoTrue-compatible server on loopback
    (this app, embedded, with GOTRUE_API_ENABLED, on the same database) and points the settings
    at it, as a Supabase project's URL and keys.
    """
    servers = ExitStack()

    def base(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "cors_origins": [SPA_ORIGIN],
            "rate_limit_signin_per_account": "1000/minute",
            "rate_limit_signin_per_address": "1000/minute",
            "rate_limit_refresh_per_address": "1000/minute",
            "redis_url": None,
        }
        return Settings(_env_file=None, **(values | overrides))

    def make(**overrides: Any) -> Settings:
        if identity_provider == "embedded":
            return base(**overrides)
        identity = {k: overrides.pop(k) for k in _IDENTITY_SETTINGS if k in overrides}
        identity |= {k: overrides[k] for k in _SHARED_SETTINGS if k in overrides}
        url = servers.enter_context(gotrue_server(base, **identity))
        return base(**supabase_settings(url), **overrides)

    with servers:
        yield make


async def _empty_tables(services: Services) -> None:
    def empty(conn: sa.Connection) -> None:
        if services.database.is_sqlite:
            for table in _APP_TABLES.split(", "):
                conn.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 -- fixed names
        else:
            conn.execute(sa.text(f"TRUNCATE {_APP_TABLES} CASCADE"))

    await services.database.write(empty)


@pytest.fixture
async def make_app(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await make_app(**setting_overrides)` -> a started app on an empty database."""
    stack: list[Any] = []

    async def make(**overrides: Any) -> FastAPI:
        app = create_app(make_settings(**overrides))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        if not stack[1:]:  # the first app of a test empties the shared PostgreSQL database
            await _empty_tables(app.state.services)
        return app

    yield make
    for lifespan in reversed(stack):
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def app(make_app: Callable[..., Any]) -> FastAPI:
    result: FastAPI = await make_app()
    return result


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def make_api(make_app: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await make_api(**setting_overrides)` -> an AuthApi on a new app of its own."""
    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> AuthApi:
        app = await make_app(**overrides)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        return AuthApi(client)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def api(client: httpx.AsyncClient) -> AuthApi:
    return AuthApi(client)


@pytest.fixture
async def user(api: AuthApi) -> ApiUser:
    """A signed-up and signed-in user on `client`."""
    return await api.signed_in_user()
