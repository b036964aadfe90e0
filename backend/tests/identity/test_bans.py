"""A ban through GoTrue's admin API, then `/auth` under both providers: the same answer, 403
`user_banned` in `{code, message, details}` (the supabase provider maps GoTrue's `user_banned`,
which it used to report as 503 `provider_unavailable`).

Under the supabase provider the admin API is the GoTrue-compatible server's (the project); under
the embedded one it is the app's own `/auth/v1`. GoTrue's side: `backend/tests/gotrue/test_bans.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from backend.tests.lifecycle.mailbox import mails_to, token_of
from backend.tests.providers import both_identity_providers  # noqa: F401 -- runs under both


@dataclass
class Project:
    """`/auth` of the app under test, and the admin API of its identity service."""

    api: AuthApi
    admin: httpx.AsyncClient
    provider: str
    outbox: Path

    async def ban(self, user_id: str, duration: str) -> dict[str, Any]:
        response = await self.admin.put(
            f"/auth/v1/admin/users/{user_id}", json={"ban_duration": duration}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def project(make_app: Callable[..., Any], identity_provider: str) -> AsyncIterator[Project]:
    keys = {
        "apikey": SERVICE_ROLE_KEY,
        "Authorization": f"Bearer {SERVICE_ROLE_KEY}",
    }
    if identity_provider == "embedded":
        app = await make_app(
            gotrue_api_enabled=True,
            supabase_anon_key=ANON_KEY,
            supabase_service_role_key=SERVICE_ROLE_KEY,
        )
        transport = httpx.ASGITransport(app=app)
        admin = httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=keys)
    else:
        app = await make_app()
        url = app.state.services.settings.supabase_url
        admin = httpx.AsyncClient(base_url=url, headers=keys)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    async with admin, client:
        outbox = app.state.services.settings.data_dir / "outbox"
        yield Project(api=AuthApi(client), admin=admin, provider=identity_provider, outbox=outbox)


BANNED = {"code": "user_banned", "message": "This account is banned", "details": {}}


class TestBannedThroughAuth:
    async def test_signin_of_a_banned_user_is_403_user_banned(self, project):
        user = await project.api.signed_in_user()
        await project.ban(user.id, "24h")

        response = await project.api.signin(user.email)

        assert (response.status_code, response.json()) == (403, BANNED)

    async def test_refresh_of_a_session_from_before_the_ban_is_403_and_keeps_the_cookie(
        self, project
    ):
        user = await project.api.signed_in_user()
        cookie = project.api.refresh_cookie
        await project.ban(user.id, "24h")

        response = await project.api.refresh()

        assert (response.status_code, response.json()) == (403, BANNED)
        assert project.api.refresh_cookie == cookie

    async def test_me_with_a_token_from_before_the_ban_is_403(self, project):
        user = await project.api.signed_in_user()
        await project.ban(user.id, "24h")

        response = await project.api.client.get("/auth/me", headers=user.auth)

        assert (response.status_code, response.json()) == (403, BANNED)

    async def test_lifting_the_ban_restores_signin_refresh_and_me(self, project):
        user = await project.api.signed_in_user()
        await project.ban(user.id, "24h")
        await project.ban(user.id, "none")

        refreshed = await project.api.refresh()
        me = await project.api.client.get(
            "/auth/me", headers={"Authorization": f"Bearer {refreshed.json()['accessToken']}"}
        )
        signed_in = await project.api.signin(user.email)

        assert refreshed.status_code == 200, refreshed.text
        assert me.status_code == 200
        assert signed_in.status_code == 200

    async def test_logout_of_a_banned_user_clears_the_cookie(self, project):
        user = await project.api.signed_in_user()
        await project.ban(user.id, "24h")

        response = await project.api.logout()

        assert response.status_code == 200
        assert project.api.refresh_cookie is None

    async def test_a_wrong_password_on_a_banned_account(self, project):
        """Embedded: still `auth_invalid_credentials` (the password is checked first). Supabase:
        GoTrue's password grant tells the ban before it checks the password (`token.go`), and
        this app cannot check it in GoTrue's place: `user_banned`. README says so."""
        user = await project.api.signed_in_user()
        await project.ban(user.id, "24h")

        wrong = await project.api.signin(user.email, "not the password at all")
        unknown = await project.api.signin(unique_email(), "not the password at all")

        assert unknown.json()["code"] == "auth_invalid_credentials"
        if project.provider == "embedded":
            assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json())
        else:
            assert (wrong.status_code, wrong.json()) == (403, BANNED)

    async def test_a_password_change_of_a_banned_user_is_403(self, project):
        user = await project.api.signed_in_user()
        await project.ban(user.id, "24h")

        response = await project.api.client.post(
            "/auth/password",
            headers=user.auth,
            json={"currentPassword": PASSWORD, "newPassword": "another long passphrase"},
        )

        assert (response.status_code, response.json()) == (403, BANNED)

    async def test_a_reset_link_of_a_banned_user_is_403_and_not_spent(self, project):
        """GoTrue's `/verify` refuses a banned user before it spends the link; so does the
        embedded store (the spending transaction is rolled back)."""
        user = await project.api.signed_in_user()
        forgot = await project.api.post("/auth/password/forgot", {"email": user.email})
        assert forgot.status_code == 202
        token = token_of((await mails_to(project.outbox, user.email))[-1], "reset-password")
        await project.ban(user.id, "24h")
        body = {"token": token, "password": "a brand new passphrase 42"}

        refused = await project.api.post("/auth/password/reset", body)
        await project.ban(user.id, "none")
        reset = await project.api.post("/auth/password/reset", body)

        assert (refused.status_code, refused.json()) == (403, BANNED)
        assert reset.status_code == 200, reset.text
