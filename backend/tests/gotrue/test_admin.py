"""/auth/v1/admin: who is an admin, and GoTrue's user administration."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from backend.app.db.tables import items, user_profile
from backend.tests.gotrue.conftest import legacy_jwt
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, unique_email


def code(response) -> str:
    value: str = response.json()["code"]
    return value


class TestAdminCredentials:
    @pytest.mark.parametrize("bearer", [SERVICE_ROLE_KEY, legacy_jwt("service_role"),
                                        legacy_jwt("supabase_admin")])  # fmt: skip
    async def test_service_key_or_a_legacy_admin_jwt_is_admin(self, gotrue, bearer):
        response = await gotrue.call("GET", "/admin/users", key=ANON_KEY, bearer=bearer)

        assert response.status_code == 200

    async def test_no_bearer_is_no_authorization(self, gotrue):
        response = await gotrue.call("GET", "/admin/users", key=SERVICE_ROLE_KEY)

        assert response.status_code == 401
        assert code(response) == "no_authorization"

    async def test_user_token_is_not_admin(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "GET", "/admin/users", key=SERVICE_ROLE_KEY, bearer=session["access_token"]
        )

        assert response.status_code == 403
        assert code(response) == "not_admin"
        assert response.json()["message"] == "User not allowed"

    async def test_user_token_of_an_ended_session_is_session_not_found(self, gotrue):
        """GoTrue `requireAdminCredentials` checks a user token's session before its role."""
        session = await gotrue.session()
        await gotrue.call("POST", "/logout", bearer=session["access_token"])

        response = await gotrue.call("GET", "/admin/users", bearer=session["access_token"])

        assert response.status_code == 403
        assert code(response) == "session_not_found"

    @pytest.mark.parametrize("bearer", [ANON_KEY, legacy_jwt("anon"), legacy_jwt("authenticated")])
    async def test_anon_key_or_a_non_admin_role_is_not_admin(self, gotrue, bearer):
        response = await gotrue.call("GET", "/admin/users", bearer=bearer)

        assert response.status_code == 403
        assert code(response) == "not_admin"

    @pytest.mark.parametrize(
        "bearer",
        ["garbage", legacy_jwt("service_role", secret="another-secret-of-32-or-more-bytes")],
    )
    async def test_unverifiable_bearer_is_bad_jwt(self, gotrue, bearer):
        response = await gotrue.call("GET", "/admin/users", bearer=bearer)

        assert response.status_code == 403
        assert code(response) == "bad_jwt"

    async def test_legacy_jwt_is_no_admin_without_the_jwt_secret(self, make_gotrue):
        gotrue = await make_gotrue(supabase_jwt_secret=None)

        response = await gotrue.call("GET", "/admin/users", bearer=legacy_jwt("service_role"))

        assert response.status_code == 403
        assert code(response) == "bad_jwt"

    async def test_the_gateway_key_check_comes_first(self, gotrue):
        response = await gotrue.call("GET", "/admin/users", key=None, bearer=SERVICE_ROLE_KEY)

        assert response.status_code == 401
        assert response.json()["message"] == "No API key found in request"


class TestCreateUser:
    async def test_created_user_with_email_confirm_signs_in(self, gotrue):
        email = unique_email()

        response = await gotrue.admin(
            "POST",
            "/users",
            json={"email": email, "password": PASSWORD, "email_confirm": True,
                  "user_metadata": {"display_name": "Ada"}, "app_metadata": {"tier": "gold"}},
        )  # fmt: skip

        assert response.status_code == 200
        user = response.json()
        assert user["email"] == email
        assert user["user_metadata"] == {"display_name": "Ada"}
        assert user["app_metadata"] == {"provider": "email", "providers": ["email"], "tier": "gold"}
        assert user["email_confirmed_at"]
        assert (await gotrue.sign_in(email)).status_code == 200

    async def test_unconfirmed_user_is_email_not_confirmed_after_the_right_password(self, gotrue):
        email = unique_email()
        await gotrue.admin("POST", "/users", json={"email": email, "password": PASSWORD})

        right = await gotrue.sign_in(email)
        wrong = await gotrue.sign_in(email, "wrong password")

        assert right.status_code == 400
        assert code(right) == "email_not_confirmed"
        assert code(wrong) == "invalid_credentials"

    async def test_without_a_password_nobody_can_sign_in(self, gotrue):
        email = unique_email()

        response = await gotrue.admin(
            "POST", "/users", json={"email": email, "email_confirm": True}
        )

        assert response.status_code == 200
        assert code(await gotrue.sign_in(email, "")) == "invalid_credentials"

    async def test_taken_email_is_email_exists(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.admin("POST", "/users", json={"email": session["user"]["email"]})

        assert response.status_code == 422
        assert code(response) == "email_exists"

    @pytest.mark.parametrize(
        ("body", "status", "expected"),
        [
            ({}, 400, "validation_failed"),
            ({"email": "nope"}, 400, "validation_failed"),
            ({"email": "ada@example.com", "password": "short"}, 422, "weak_password"),
        ],
    )
    async def test_invalid_create_is_refused(self, gotrue, body, status, expected):
        response = await gotrue.admin("POST", "/users", json=body)

        assert response.status_code == status
        assert code(response) == expected


class TestListUsers:
    async def _users(self, gotrue, count: int) -> list[str]:
        return [(await gotrue.session())["user"]["id"] for _ in range(count)]

    async def test_users_are_paged_newest_first_with_count_and_links(self, gotrue):
        ids = await self._users(gotrue, 3)

        first = await gotrue.admin("GET", "/users", params={"page": 1, "per_page": 2})
        second = await gotrue.admin("GET", "/users", params={"page": 2, "per_page": 2})

        assert first.status_code == 200
        assert first.json()["aud"] == "authenticated"
        assert [u["id"] for u in first.json()["users"]] == ids[::-1][:2]
        assert [u["id"] for u in second.json()["users"]] == ids[:1]
        assert first.headers["x-total-count"] == "3"
        assert first.headers["link"] == (
            '</auth/v1/admin/users?page=2&per_page=2>; rel="next", '
            '</auth/v1/admin/users?page=2&per_page=2>; rel="last"'
        )
        assert second.headers["link"] == '</auth/v1/admin/users?page=2&per_page=2>; rel="last"'

    async def test_empty_paging_values_mean_the_defaults(self, gotrue):
        """supabase-py's `list_users()` sends `?page=&per_page=`."""
        await self._users(gotrue, 2)

        response = await gotrue.admin("GET", "/users?page=&per_page=")

        assert response.status_code == 200
        assert len(response.json()["users"]) == 2

    async def test_paging_value_that_is_no_number_is_validation_failed(self, gotrue):
        response = await gotrue.admin("GET", "/users", params={"page": "two"})

        assert response.status_code == 400
        assert code(response) == "validation_failed"


class TestGetAndDeleteUser:
    async def test_get_user_by_id(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.admin("GET", f"/users/{session['user']['id']}")

        assert response.status_code == 200
        assert response.json()["email"] == session["user"]["email"]

    @pytest.mark.parametrize("method", ["GET", "DELETE"])
    async def test_unknown_id_is_user_not_found(self, gotrue, method):
        response = await gotrue.admin(method, f"/users/{uuid.uuid4()}")

        assert response.status_code == 404
        assert code(response) == "user_not_found"

    @pytest.mark.parametrize("method", ["GET", "DELETE"])
    async def test_id_that_is_no_uuid_is_validation_failed(self, gotrue, method):
        response = await gotrue.admin(method, "/users/42")

        assert response.status_code == 404
        assert code(response) == "validation_failed"

    async def test_delete_removes_the_user_its_sessions_profile_and_items(self, gotrue):
        session = await gotrue.session(data={"display_name": "Ada"})
        user_id = session["user"]["id"]
        bearer = {"Authorization": f"Bearer {session['access_token']}"}
        assert (await gotrue.client.post("/items", json={"title": "x"}, headers=bearer)).is_success

        response = await gotrue.admin(
            "DELETE", f"/users/{user_id}", json={"should_soft_delete": False}
        )

        assert response.status_code == 200
        assert response.json() == {}
        assert code(await gotrue.refresh(session["refresh_token"])) == "refresh_token_not_found"
        assert code(await gotrue.admin("GET", f"/users/{user_id}")) == "user_not_found"
        database = gotrue.client._transport.app.state.services.database
        leftovers = await database.read(
            lambda conn: [
                conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(column == user_id)
                ).scalar()
                for table, column in ((user_profile, user_profile.c.id), (items, items.c.user_id))
            ]
        )
        assert leftovers == [0, 0]
