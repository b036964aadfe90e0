"""GoTrue's admin lifecycle routes: `PUT /admin/users/{id}`, `/invite`,
`/admin/generate_link` (GT `internal/api/admin.go`, `invite.go`, `mail.go`), on SQLite and
PostgreSQL. The clients' runs: test_supabase_py.py, test_supabase_js.py."""

from __future__ import annotations

import pytest

from backend.tests.helpers import PASSWORD, unique_email

NEW_PASSWORD = "a brand new passphrase 42"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def created(gotrue, **body):
    response = await gotrue.admin("POST", "/users", json={"email": unique_email(), **body})
    assert response.status_code == 200, response.text
    return response.json()


class TestAdminUpdate:
    async def test_email_password_metadata_and_confirmation(self, gotrue):
        session = await gotrue.session(data={"a": 1, "b": 2})
        user_id, new_email = session["user"]["id"], unique_email()

        response = await gotrue.admin(
            "PUT",
            f"/users/{user_id}",
            json={
                "email": new_email,
                "password": NEW_PASSWORD,
                "user_metadata": {"b": None, "c": 3},
                "app_metadata": {"plan": "pro"},
                "email_confirm": True,
            },
        )
        refreshed = await gotrue.refresh(session["refresh_token"])

        body = response.json()
        assert response.status_code == 200
        assert body["email"] == new_email
        assert body["user_metadata"] == {"a": 1, "c": 3}
        assert body["app_metadata"]["plan"] == "pro"
        assert body["app_metadata"]["provider"] == "email"
        assert body["email_confirmed_at"]
        # A new password ends every session (GoTrue's `UpdatePassword(tx, nil)`).
        assert refreshed.json()["code"] == "refresh_token_not_found"
        assert (await gotrue.sign_in(new_email, NEW_PASSWORD)).status_code == 200

    async def test_email_confirm_confirms_an_unconfirmed_user(self, gotrue):
        user = await created(gotrue, password=PASSWORD)

        await gotrue.admin("PUT", f"/users/{user['id']}", json={"email_confirm": True})

        assert (await gotrue.sign_in(user["email"])).status_code == 200

    async def test_a_taken_email_is_email_exists(self, gotrue):
        first, second = await created(gotrue), await created(gotrue)

        response = await gotrue.admin(
            "PUT", f"/users/{second['id']}", json={"email": first["email"].upper()}
        )

        assert (response.status_code, response.json()["code"]) == (422, "email_exists")

    async def test_unknown_and_malformed_ids(self, gotrue):
        unknown = await gotrue.admin("PUT", f"/users/{UNKNOWN}", json={})
        malformed = await gotrue.admin("PUT", "/users/nope", json={})

        assert (unknown.status_code, unknown.json()["code"]) == (404, "user_not_found")
        assert (malformed.status_code, malformed.json()["code"]) == (404, "validation_failed")

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "nope"},
            {"password": "short"},
            {"password": "x" * 1025},
            {"email_confirm": "yes"},
            {"user_metadata": [1]},
            {"ban_duration": "24h"},
            {"phone": "+15550100"},
            {"role": "service_role"},
        ],
    )
    async def test_refused_bodies_change_nothing(self, gotrue, body):
        user = await created(gotrue, password=PASSWORD, email_confirm=True)

        response = await gotrue.admin("PUT", f"/users/{user['id']}", json=body)
        after = await gotrue.admin("GET", f"/users/{user['id']}")

        assert response.status_code in (400, 422)
        assert after.json()["email"] == user["email"]
        assert (await gotrue.sign_in(user["email"])).status_code == 200

    async def test_ban_none_is_accepted(self, gotrue):
        user = await created(gotrue)

        response = await gotrue.admin("PUT", f"/users/{user['id']}", json={"ban_duration": "none"})

        assert response.status_code == 200

    async def test_a_user_token_is_not_admin(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "PUT", f"/admin/users/{session['user']['id']}", bearer=session["access_token"], json={}
        )

        assert (response.status_code, response.json()["code"]) == (403, "not_admin")
