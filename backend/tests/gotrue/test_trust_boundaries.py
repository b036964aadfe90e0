"""What a caller of `/auth/v1` cannot claim: fields that are the server's (mass assignment), and a
refresh token replayed through the other API. Both APIs share one store, so a rule that held in
one and not the other would be a way around it."""

from __future__ import annotations

import jwt
import pytest

from backend.tests.helpers import AuthApi, unique_email

# Fields of GoTrue's user that only the server (or an admin) sets.
_SERVER_FIELDS = {
    "id": "00000000-0000-4000-8000-000000000000",
    "aud": "service_role",
    "role": "service_role",
    "app_metadata": {"provider": "admin", "roles": ["admin"]},
    "email_confirmed_at": "2000-01-01T00:00:00Z",
    "confirmed_at": "2000-01-01T00:00:00Z",
    "banned_until": None,
    "is_super_admin": True,
    "is_anonymous": True,
}


def claims_of(session: dict[str, object]) -> dict[str, object]:
    token = session["access_token"]
    assert isinstance(token, str)
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


class TestMassAssignment:
    async def test_sign_up_takes_none_of_the_servers_fields(self, gotrue):
        """A public sign-up naming its own id, role, audience or app metadata gets the server's."""
        response = await gotrue.signup(unique_email(), **_SERVER_FIELDS)

        assert response.status_code == 200, response.text
        session = response.json()
        user, claims = session["user"], claims_of(session)
        assert user["id"] != _SERVER_FIELDS["id"]
        assert (user["aud"], user["role"]) == ("authenticated", "authenticated")
        assert (claims["aud"], claims["role"]) == ("authenticated", "authenticated")
        assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
        assert user.get("is_anonymous") is not True
        assert user["user_metadata"] == {}

    async def test_the_fields_given_as_metadata_stay_metadata(self, gotrue):
        """`data` is the user's to write; a `role` in it is data, never a claim of authority."""
        session = await gotrue.session(data={"role": "service_role", "aud": "service_role"})

        claims = claims_of(session)
        assert (claims["role"], claims["aud"]) == ("authenticated", "authenticated")
        assert claims["user_metadata"] == {"role": "service_role", "aud": "service_role"}
        admin = await gotrue.call("GET", "/admin/users", bearer=session["access_token"], key=None)
        assert admin.status_code in (401, 403)

    @pytest.mark.parametrize("field", ["id", "aud", "role", "email_confirmed_at", "is_anonymous"])
    async def test_a_user_update_cannot_set_a_servers_field(self, gotrue, field):
        session = await gotrue.session()
        bearer = session["access_token"]

        response = await gotrue.call(
            "PUT", "/user", bearer=bearer, json={field: _SERVER_FIELDS[field]}
        )
        after = await gotrue.call("GET", "/user", bearer=bearer)

        assert response.status_code == 200
        kept = ("id", "aud", "role", "email", "email_confirmed_at", "app_metadata", "is_anonymous")
        assert {name: after.json().get(name) for name in kept} == {
            name: session["user"].get(name) for name in kept
        }


class TestRefreshReplayAcrossTheApis:
    """A refresh token is one token whichever API rotates it: replayed through the other API past
    the reuse interval, it is reuse, and the whole session ends on both."""

    async def test_a_token_rotated_by_gotrue_replayed_through_auth_ends_the_session(
        self, make_gotrue
    ):
        gotrue = await make_gotrue(refresh_reuse_interval_seconds=0)
        first = await gotrue.session()
        rotated = (await gotrue.refresh(first["refresh_token"])).json()
        api = AuthApi(gotrue.client)

        api.put_refresh_cookie(first["refresh_token"])
        replayed = await api.refresh()
        after = await gotrue.refresh(rotated["refresh_token"])

        assert (replayed.status_code, replayed.json()["code"]) == (401, "refresh_token_reused")
        assert after.status_code == 400
        me = await gotrue.call("GET", "/user", bearer=rotated["access_token"])
        assert (me.status_code, me.json()["code"]) == (403, "session_not_found")

    async def test_a_cookie_rotated_by_auth_replayed_through_gotrue_ends_the_session(
        self, make_gotrue
    ):
        gotrue = await make_gotrue(refresh_reuse_interval_seconds=0)
        email = unique_email()
        await gotrue.session(email)
        api = AuthApi(gotrue.client)
        assert (await api.signin(email)).status_code == 200
        first_cookie = api.refresh_cookie
        assert (await api.refresh()).status_code == 200

        replayed = await gotrue.refresh(first_cookie)
        after = await api.refresh()

        assert (replayed.status_code, replayed.json()["code"]) == (
            400,
            "refresh_token_already_used",
        )
        assert (after.status_code, after.json()["code"]) == (401, "refresh_token_invalid")
