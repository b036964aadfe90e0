"""POST /auth/password: change the password with the current one (DESIGN §12, ASVS V6.2.3), with
both identity providers."""

from __future__ import annotations

import httpx

from backend.tests.helpers import PASSWORD, AuthApi
from backend.tests.providers import both_identity_providers  # noqa: F401 -- runs under both

NEW_PASSWORD = "a brand new passphrase 42"


def _browser(api: AuthApi) -> AuthApi:
    return AuthApi(httpx.AsyncClient(transport=api.client._transport, base_url="http://testserver"))


class TestChangePassword:
    async def test_change_keeps_this_session_and_ends_the_others(self, api, user):
        """200 {ok}; the new password signs in, the old does not; only this session lives."""
        other = _browser(api)
        other_token = (await other.signin(user.email)).json()["accessToken"]

        response = await api.client.post(
            "/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
            headers=user.auth,
        )

        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True}
        assert (await api.client.get("/auth/me", headers=user.auth)).status_code == 200
        assert (await api.refresh()).status_code == 200
        assert (await other.refresh()).json()["code"] == "refresh_token_invalid"
        me = await other.client.get("/auth/me", headers={"Authorization": f"Bearer {other_token}"})
        assert me.status_code == 401
        assert (await other.signin(user.email, PASSWORD)).status_code == 401
        assert (await other.signin(user.email, NEW_PASSWORD)).status_code == 200
        await other.client.aclose()

    async def test_wrong_current_password_is_403_and_changes_nothing(self, api, user):
        """403 invalid_current_password; the old password still works."""
        response = await api.client.post(
            "/auth/password",
            json={"currentPassword": "not the password", "newPassword": NEW_PASSWORD},
            headers=user.auth,
        )

        assert response.status_code == 403
        assert response.json()["code"] == "invalid_current_password"
        assert NEW_PASSWORD not in response.text
        assert (await api.signin(user.email, PASSWORD)).status_code == 200

    async def test_same_password_is_weak_password_same_password(self, api, user):
        """New equal to current: 422 weak_password, reason same_password."""
        response = await api.client.post(
            "/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": PASSWORD},
            headers=user.auth,
        )

        assert response.status_code == 422
        assert response.json()["code"] == "weak_password"
        assert response.json()["details"]["reasons"] == ["same_password"]

    async def test_short_new_password_is_weak_password(self, api, user):
        """A new password under 8 characters: 422 weak_password, too_short, never echoed."""
        response = await api.client.post(
            "/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": "Zq7x!"},
            headers=user.auth,
        )

        assert response.status_code == 422
        assert response.json()["details"]["reasons"] == ["too_short"]
        assert "Zq7x!" not in response.text

    async def test_without_bearer_is_401(self, api):
        """No access token: 401 unauthorized."""
        response = await api.client.post(
            "/auth/password", json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
        )

        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"

    async def test_missing_field_is_422_validation_error(self, api, user):
        """A body without newPassword: 422 validation_error, the password not echoed."""
        response = await api.client.post(
            "/auth/password", json={"currentPassword": PASSWORD}, headers=user.auth
        )

        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert PASSWORD not in response.text

    async def test_guessing_is_rate_limited_like_sign_in(self, make_api):
        """Attempts count toward RATE_LIMIT_SIGNIN_PER_ACCOUNT: the next is 429 + Retry-After."""
        api = await make_api(rate_limit_signin_per_account="3/minute")
        user = await api.signed_in_user()  # the sign-in is attempt 1
        body = {"currentPassword": "wrong guess", "newPassword": NEW_PASSWORD}
        first = await api.client.post("/auth/password", json=body, headers=user.auth)
        second = await api.client.post("/auth/password", json=body, headers=user.auth)

        limited = await api.client.post("/auth/password", json=body, headers=user.auth)

        assert [first.status_code, second.status_code] == [403, 403]
        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
