"""Fixtures for GoTrue's API under /auth/v1: apps with it enabled, and a driver that calls it as
the clients do (`apikey` on every call, `X-Supabase-Api-Version: 2024-01-01` unless told not)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jwt
import pytest

from backend.app.core.settings import Settings
from backend.app.main import create_app
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, free_port, unique_email
from backend.tests.live_server import live_server
from backend.tests.mail.conftest import certificates, make_smtp_server

__all__ = ["certificates", "make_smtp_server"]

JWT_SECRET = "legacy-jwt-secret-of-at-least-32-characters"


def legacy_jwt(role: str, secret: str = JWT_SECRET) -> str:
    """A key in the shape of Supabase's legacy JWT keys: HS256, signed with the JWT secret."""
    claims = {"role": role, "iss": "supabase", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


class GoTrue:
    """Calls /auth/v1 the way supabase-js and supabase-py do."""

    def __init__(self, client: httpx.AsyncClient, app: Any = None):
        self.client = client
        self.app = app  # the app under test, when it runs in this process

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = ANON_KEY,
        bearer: str | None = None,
        versioned: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["apikey"] = key
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        if versioned:
            headers["X-Supabase-Api-Version"] = "2024-01-01"
        return await self.client.request(method, f"/auth/v1{path}", headers=headers, **kwargs)

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call(
            method, f"/admin{path}", key=SERVICE_ROLE_KEY, bearer=SERVICE_ROLE_KEY, **kwargs
        )

    async def signup(
        self, email: str | None = None, password: str = PASSWORD, **body: Any
    ) -> httpx.Response:
        body = {"email": email or unique_email(), "password": password, **body}
        return await self.call("POST", "/signup", json=body)

    async def sign_in(self, email: str, password: str = PASSWORD, **kwargs: Any) -> httpx.Response:
        return await self.call(
            "POST",
            "/token",
            params={"grant_type": "password"},
            json={"email": email, "password": password},
            **kwargs,
        )

    async def refresh(self, refresh_token: str | None) -> httpx.Response:
        return await self.call(
            "POST",
            "/token",
            params={"grant_type": "refresh_token"},
            json={"refresh_token": refresh_token},
        )

    async def session(self, email: str | None = None, **body: Any) -> dict[str, Any]:
        """A new user's first session (sign-up autoconfirms)."""
        response = await self.signup(email, **body)
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()
        return session


@pytest.fixture
async def make_gotrue(make_app: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await make_gotrue(**setting_overrides)` -> a GoTrue driver on a new app."""
    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> GoTrue:
        settings = {
            "gotrue_api_enabled": True,
            "supabase_anon_key": ANON_KEY,
            "supabase_service_role_key": SERVICE_ROLE_KEY,
            "supabase_jwt_secret": JWT_SECRET,
        }
        app = await make_app(**(settings | overrides))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        return GoTrue(client, app)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def gotrue(make_gotrue: Callable[..., Any]) -> GoTrue:
    driver: GoTrue = await make_gotrue()
    return driver


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """Factory: `with serve(**setting_overrides) as url:` this app with GoTrue's API on loopback,
    for the real clients. Tokens live an hour (the clients refresh within 10 s / 90 s of expiry)
    and name the server as their issuer, as Supabase's do."""

    @contextmanager
    def run(**overrides: Any) -> Iterator[str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = {
            "gotrue_api_enabled": True,
            "jwt_issuer": f"{url}/auth/v1",
            "access_token_ttl_seconds": 3600,
            "supabase_anon_key": ANON_KEY,
            "supabase_service_role_key": SERVICE_ROLE_KEY,
            "supabase_jwt_secret": JWT_SECRET,
        }
        app = create_app(make_settings(**(settings | overrides)))
        with live_server(app, port=port, log_level="warning") as base_url:
            yield base_url

    return run
