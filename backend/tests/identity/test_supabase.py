"""The supabase provider against a GoTrue-compatible server: what the HTTP suites cannot show.

The /auth and /items contract suites run under this provider too (`backend/tests/providers.py`);
here: concurrency, compensation, and GoTrue down in each way it can be down.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from backend.app.main import create_app
from backend.tests.api.test_auth import assert_error
from backend.tests.gotrue_server import SERVICE_ROLE_KEY, gotrue_server, supabase_settings
from backend.tests.helpers import PASSWORD, AuthApi, unique_email

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def project(make_settings, tmp_path: Path) -> Iterator[str]:
    """A GoTrue-compatible project on a database of its own (the app keeps its data apart)."""
    with gotrue_server(make_settings, database_url=f"sqlite:///{tmp_path / 'gotrue.db'}") as url:
        yield url


@contextlib.asynccontextmanager
async def supabase_api(make_settings, url: str, **overrides) -> AsyncIterator[AuthApi]:
    app = create_app(make_settings(**supabase_settings(url), **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield AuthApi(client)


class TestConcurrentSignIns:
    async def test_users_signing_in_at_the_same_moment_never_get_each_others_session(
        self, make_settings, project
    ):
        """One client per call: twenty sign-ins of four users at once, each answer is its own."""
        async with supabase_api(make_settings, project) as api:
            emails = [unique_email() for _ in range(4)]
            for email in emails:
                assert (await api.signup(email)).status_code == 201
            browsers = [AuthApi(api.client) for _ in range(20)]
            await asyncio.gather(*(browser.fetch_csrf() for browser in browsers[:1]))
            for browser in browsers:
                browser.csrf_token = browsers[0].csrf_token
            responses = await asyncio.gather(
                *(
                    browser.post("/auth/signin", {"email": emails[n % 4], "password": PASSWORD})
                    for n, browser in enumerate(browsers)
                )
            )

        for n, response in enumerate(responses):
            body = response.json()
            claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
            assert body["user"]["email"] == emails[n % 4]
            assert claims["email"] == emails[n % 4]
            assert claims["sub"] == body["user"]["id"]


class TestProfileCompensation:
    async def test_a_failed_profile_insert_leaves_no_gotrue_user(
        self, make_settings, project, tmp_path
    ):
        async with supabase_api(make_settings, project) as api:
            # The app's database loses its profile table: the insert after the GoTrue user fails.
            with sqlite3.connect(tmp_path / "app.db") as broken:
                broken.execute("DROP TABLE user_profile")
            email = unique_email()
            response = await api.signup(email)

        async with httpx.AsyncClient(base_url=f"{project}/auth/v1") as gotrue:
            users = await gotrue.get(
                "/admin/users",
                headers={"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"},
            )
        assert response.status_code == 503
        assert email not in {user["email"] for user in users.json()["users"]}


@pytest.fixture
async def stub_gotrue(request) -> AsyncIterator[str]:
    """A project URL whose server misbehaves as `request.param` says: `refused` (nothing
    listens), `502` (a gateway error), `hang` (accepts, never answers)."""
    if request.param == "refused":
        yield "http://127.0.0.1:1"
        return
    writers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if request.param == "502":
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("stub_gotrue", ["refused", "502", "hang"], indirect=True)
class TestGoTrueDown:
    async def test_refresh_is_503_and_the_cookie_is_kept(self, make_settings, stub_gotrue):
        async with supabase_api(make_settings, stub_gotrue) as api:
            api.put_refresh_cookie("a-refresh-token-of-a-live-session")
            await api.fetch_csrf()  # the CSRF cookie is bound to the refresh cookie it goes with
            response = await api.refresh()

        assert_error(response, 503, "provider_unavailable")
        assert "set-cookie" not in response.headers

    async def test_signin_is_503(self, make_settings, stub_gotrue):
        async with supabase_api(make_settings, stub_gotrue) as api:
            response = await api.signin(unique_email())

        assert_error(response, 503, "provider_unavailable")

    async def test_a_protected_route_whose_keys_cannot_be_fetched_is_503_not_401(
        self, make_settings, stub_gotrue
    ):
        token = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "some-key"})
        async with supabase_api(make_settings, stub_gotrue) as api:
            response = await api.client.get("/items", headers={"Authorization": f"Bearer {token}"})

        assert_error(response, 503, "provider_unavailable")
