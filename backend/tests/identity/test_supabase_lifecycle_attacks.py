"""The supabase provider's lifecycle routes against a GoTrue that answers what it should not: a
body that is not JSON, JSON of another shape, a status with no meaning here. Each is an outage
of the provider as configured (503 `provider_unavailable`, the cookie kept), never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from backend.app.identity.embedded import gotrue as gotrue_operations
from backend.app.main import create_app
from backend.tests.api.test_auth import assert_error
from backend.tests.gotrue_server import gotrue_server, supabase_settings
from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from backend.tests.lifecycle.mailbox import mails_to, token_of

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NEW_PASSWORD = "a brand new passphrase 42"

# What the stub answers every request with: a status line, a content type and a body.
ANSWERS = {
    "html_400": (b"400 Bad Request", b"text/html", b"<html>bad request</html>"),
    "html_404": (b"404 Not Found", b"text/html", b"<html>no such page</html>"),
    "html_200": (b"200 OK", b"text/html", b"<html>a captive portal</html>"),
    "empty_json_200": (b"200 OK", b"application/json", b"{}"),
    "list_200": (b"200 OK", b"application/json", b"[1, 2]"),
    "teapot_418": (b"418 I'm a teapot", b"application/json", b'{"code": "teapot"}'),
}


@pytest.fixture
async def odd_gotrue(request) -> AsyncIterator[str]:
    """A project URL whose server answers every request with `ANSWERS[request.param]`; or
    `refused` (nothing listens) or `hang` (it reads the request and never answers)."""
    if request.param == "refused":
        yield "http://127.0.0.1:1"
        return
    status, content_type, body = ANSWERS.get(request.param, ANSWERS["html_200"])
    writers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if request.param == "hang":
            await reader.read()
            return
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\ncontent-type: "
                    + content_type
                    + b"\r\ncontent-length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


JWT_SECRET = "a-legacy-jwt-secret-of-at-least-32-characters"


def access_token(url: str) -> str:
    """A token the app verifies by itself (the legacy HS256 secret), so that a bearer route
    gets as far as calling GoTrue."""
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "email": unique_email(),
        "aud": "authenticated",
        "role": "authenticated",
        "iss": f"{url}/auth/v1",
        "iat": now,
        "exp": now + 600,
        "session_id": str(uuid.uuid4()),
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@contextlib.asynccontextmanager
async def supabase_api(make_settings, url: str, **overrides: Any) -> AsyncIterator[AuthApi]:
    app = create_app(
        make_settings(**supabase_settings(url), supabase_jwt_secret=JWT_SECRET, **overrides)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            api = AuthApi(client)
            await api.fetch_csrf()
            yield api


@pytest.mark.parametrize("odd_gotrue", [*sorted(ANSWERS), "refused", "hang"], indirect=True)
class TestAnOddAnswerIsAnOutage:
    async def test_forgot(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.post("/auth/password/forgot", {"email": unique_email()})

        assert response.status_code in (202, 503), response.text
        if response.status_code == 503:
            assert_error(response, 503, "provider_unavailable")

    async def test_reset(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.post(
                "/auth/password/reset", {"token": "a" * 43, "password": NEW_PASSWORD}
            )

        assert_error(response, 503, "provider_unavailable")

    async def test_verify(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.post("/auth/email/verify", {"token": "a" * 43})

        assert_error(response, 503, "provider_unavailable")

    async def test_resend(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.post("/auth/email/resend", {"email": unique_email()})

        assert response.status_code in (202, 503), response.text
        if response.status_code == 503:
            assert_error(response, 503, "provider_unavailable")

    async def test_signup(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.signup(unique_email())

        assert_error(response, 503, "provider_unavailable")

    async def test_signin(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.signin(unique_email(), PASSWORD)

        assert_error(response, 503, "provider_unavailable")

    async def test_refresh_keeps_the_cookie(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            api.put_refresh_cookie("a-refresh-token-of-a-live-session")
            await api.fetch_csrf()
            response = await api.refresh()

        assert_error(response, 503, "provider_unavailable")
        assert "set-cookie" not in response.headers

    async def test_logout_everywhere_keeps_the_cookie(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            api.put_refresh_cookie("a-refresh-token-of-a-live-session")
            await api.fetch_csrf()
            response = await api.post("/auth/logout", {"scope": "global"})

        assert response.status_code in (200, 503), response.text
        if response.status_code == 503:
            assert_error(response, 503, "provider_unavailable")
            assert "set-cookie" not in response.headers

    async def test_a_protected_route_whose_keys_cannot_be_read_is_503(
        self, make_settings, odd_gotrue
    ):
        token = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "some-key"})
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.client.get("/items", headers={"Authorization": f"Bearer {token}"})

        assert_error(response, 503, "provider_unavailable")

    async def test_password_change(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.client.post(
                "/auth/password",
                json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                headers={"Authorization": f"Bearer {access_token(odd_gotrue)}"},
            )

        assert_error(response, 503, "provider_unavailable")

    async def test_email_change(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.client.post(
                "/auth/email",
                json={"newEmail": unique_email(), "currentPassword": PASSWORD},
                headers={"Authorization": f"Bearer {access_token(odd_gotrue)}"},
            )

        assert_error(response, 503, "provider_unavailable")

    async def test_me(self, make_settings, odd_gotrue):
        async with supabase_api(make_settings, odd_gotrue) as api:
            response = await api.client.get(
                "/auth/me", headers={"Authorization": f"Bearer {access_token(odd_gotrue)}"}
            )

        assert_error(response, 503, "provider_unavailable")


class TestSecurePasswordChange:
    """A project with GoTrue's secure password change (a session over a day old needs a
    nonce) refuses `PUT /user {password}` with 400 `reauthentication_needed`: for this app
    that is "sign in again" (401), not an outage that a retry would cure (503)."""

    async def test_an_old_session_is_told_to_sign_in_again(
        self, make_settings, tmp_path, monkeypatch
    ):
        monkeypatch.setattr(gotrue_operations, "REAUTHENTICATION_WINDOW_SECONDS", -1)
        with gotrue_server(
            make_settings,
            database_url=f"sqlite:///{tmp_path / 'gotrue.db'}",
            gotrue_security_update_password_require_reauthentication=True,
        ) as url:
            async with supabase_api(make_settings, url) as api:
                user = await api.signed_in_user()
                response = await api.client.post(
                    "/auth/password",
                    json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
                    headers=user.auth,
                )
                unchanged = await api.signin(user.email, PASSWORD)

        body = assert_error(response, 401, "unauthorized")
        assert body["details"]["reason"] == "reauthentication_needed"
        assert unchanged.status_code == 200


class TestLogoutOthersKeepsThisSession:
    """`POST /auth/logout {scope: "others"}` gets a live access token by refreshing the cookie's
    token, so it must hand the rotated one back: the cookie it kept held the spent token, and
    its next refresh after GoTrue's reuse interval was reuse, which ended this session too."""

    async def test_this_session_still_refreshes_after_the_reuse_interval(
        self, make_settings, tmp_path
    ):
        with gotrue_server(
            make_settings,
            database_url=f"sqlite:///{tmp_path / 'gotrue.db'}",
            refresh_reuse_interval_seconds=1,
        ) as url:
            async with supabase_api(make_settings, url) as api:
                await api.signed_in_user()
                logout = await api.logout(json={"scope": "others"})
                await asyncio.sleep(1.5)
                refreshed = await api.refresh()

        assert logout.status_code == 200, logout.text
        assert refreshed.status_code == 200, refreshed.text


class TestARefusedResetLeavesNoSession:
    """A reset verifies the link first (GoTrue spends it then, and opens a session), and sets
    the password with that session. When GoTrue then refuses the password (its own policy is
    stricter than this app's), the session it opened must not stay behind, live and unknown to
    anyone."""

    async def test_the_links_session_is_ended(self, make_settings, tmp_path):
        gotrue_db = tmp_path / "gotrue.db"
        with gotrue_server(
            make_settings, database_url=f"sqlite:///{gotrue_db}", password_min_length=12
        ) as url:
            async with supabase_api(make_settings, url) as api:
                user = await api.signed_in_user()
                await api.post("/auth/password/forgot", {"email": user.email})
                outbox = tmp_path / "data" / "outbox"
                token = token_of((await mails_to(outbox, user.email))[-1], "reset-password")
                response = await api.post(
                    "/auth/password/reset", {"token": token, "password": "kq7#zvw-Ab"}
                )

        with sqlite3.connect(gotrue_db) as db:
            (live,) = db.execute(
                "SELECT count(*) FROM identity_sessions WHERE user_id = ? AND revoked_at IS NULL",
                (user.id.replace("-", ""),),  # SQLite keeps a UUID as 32 hex digits
            ).fetchone()
        assert (response.status_code, response.json()["code"]) == (422, "weak_password")
        assert live == 1  # the caller's own sign-in, not the link's
