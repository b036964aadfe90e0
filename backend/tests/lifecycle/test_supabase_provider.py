"""With AUTH_PROVIDER=supabase (against the GoTrue stand-in, backend/tests/gotrue_server.py) the
account lifecycle routes answer a clean 501 `not_supported` in the usual error body, until
issue 16 builds them on GoTrue; sign-in and the scoped logout keep working."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from backend.tests.helpers import PASSWORD, ApiUser, AuthApi


@pytest.fixture
def identity_provider() -> str:
    return "supabase"


def _assert_not_supported(response: httpx.Response) -> None:
    assert response.status_code == 501, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == "not_supported"
    assert isinstance(body["message"], str)
    assert body["message"]


class TestSupabaseProviderLifecycle:
    async def test_list_sessions_is_501(self, api: AuthApi, user: ApiUser):
        _assert_not_supported(await api.client.get("/auth/sessions", headers=user.auth))

    async def test_end_session_is_501(self, api: AuthApi, user: ApiUser):
        response = await api.client.delete(f"/auth/sessions/{uuid.uuid4()}", headers=user.auth)

        _assert_not_supported(response)

    async def test_forgot_password_is_501(self, api: AuthApi, user: ApiUser):
        _assert_not_supported(await api.post("/auth/password/forgot", {"email": user.email}))

    async def test_reset_password_is_501(self, api: AuthApi):
        response = await api.post(
            "/auth/password/reset", {"token": "x" * 43, "password": "a brand new passphrase 42"}
        )

        _assert_not_supported(response)

    async def test_verify_email_is_501(self, api: AuthApi):
        _assert_not_supported(await api.post("/auth/email/verify", {"token": "x" * 43}))

    async def test_resend_confirmation_is_501(self, api: AuthApi, user: ApiUser):
        _assert_not_supported(await api.post("/auth/email/resend", {"email": user.email}))

    async def test_change_email_is_501(self, api: AuthApi, user: ApiUser):
        response = await api.client.post(
            "/auth/email",
            json={"newEmail": "someone-new@example.com", "currentPassword": PASSWORD},
            headers=user.auth,
        )

        _assert_not_supported(response)

    async def test_me_carries_email_confirmed(self, api: AuthApi, user: ApiUser):
        response = await api.client.get("/auth/me", headers=user.auth)

        assert response.status_code == 200, response.text
        assert isinstance(response.json()["user"]["emailConfirmed"], bool)

    async def test_logout_with_a_scope_still_works(self, api: AuthApi, user: ApiUser):
        """The scopes map onto GoTrue's own `/logout?scope=`: not a 501."""
        response = await api.logout(json={"scope": "global"})

        assert response.status_code == 200, response.text
        assert api.refresh_cookie is None
