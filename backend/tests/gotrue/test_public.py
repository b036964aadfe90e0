"""/auth/v1's user routes: sign-up, the two grants, the user, and logout, as GoTrue answers them."""

from __future__ import annotations

import jwt
import pytest

from backend.tests.helpers import PASSWORD, unique_email

USER_FIELDS = {"id", "aud", "role", "email", "phone", "app_metadata", "user_metadata",
               "identities", "created_at", "updated_at", "is_anonymous"}  # fmt: skip
IDENTITY_FIELDS = {"id", "identity_id", "user_id", "identity_data", "provider", "created_at"}


def code(response) -> str:
    assert response.headers["x-supabase-api-version"] == "2024-01-01"
    value: str = response.json()["code"]
    return value


class TestSettings:
    async def test_settings_say_email_signups_are_on_and_autoconfirmed(self, gotrue):
        response = await gotrue.call("GET", "/settings")

        assert response.status_code == 200
        body = response.json()
        assert body["mailer_autoconfirm"] is True
        assert body["disable_signup"] is False
        assert body["external"]["email"] is True
        assert body["external"]["phone"] is False


class TestSignUp:
    async def test_sign_up_returns_a_session_since_it_autoconfirms(self, gotrue):
        email = unique_email()

        response = await gotrue.signup(email, data={"display_name": "Ada", "plan": "free"})

        assert response.status_code == 200
        session = response.json()
        assert session["token_type"] == "bearer"
        assert session["expires_in"] > 0
        assert (
            session["expires_at"]
            == jwt.decode(session["access_token"], options={"verify_signature": False})["exp"]
        )
        assert len(session["refresh_token"]) >= 12
        user = session["user"]
        assert set(user) >= USER_FIELDS
        assert user["email"] == email
        assert user["user_metadata"] == {"display_name": "Ada", "plan": "free"}
        assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
        assert user["email_confirmed_at"] == user["confirmed_at"]
        assert set(user["identities"][0]) >= IDENTITY_FIELDS

    async def test_sign_up_accepts_the_fields_clients_add(self, gotrue):
        response = await gotrue.signup(
            gotrue_meta_security={"captcha_token": None},
            code_challenge=None,
            code_challenge_method=None,
        )

        assert response.status_code == 200

    async def test_access_token_carries_gotrue_claims(self, gotrue):
        session = await gotrue.session(data={"display_name": "Ada"})

        claims = jwt.decode(session["access_token"], options={"verify_signature": False})
        header = jwt.get_unverified_header(session["access_token"])

        assert (header["alg"], bool(header["kid"])) == ("ES256", True)
        assert claims["role"] == claims["aud"] == "authenticated"
        assert claims["user_metadata"] == {"display_name": "Ada"}
        assert claims["app_metadata"]["provider"] == "email"
        assert claims["aal"] == "aal1"
        assert claims["amr"][0]["method"] == "password"
        assert claims["is_anonymous"] is False

    async def test_taken_email_is_user_already_exists(self, gotrue):
        email = unique_email()
        await gotrue.signup(email)

        response = await gotrue.signup(email.upper())

        assert response.status_code == 422
        assert code(response) == "user_already_exists"
        assert response.json()["message"] == "User already registered"

    @pytest.mark.parametrize(
        ("body", "status", "expected"),
        [
            ({"email": "ada@example.com"}, 400, "validation_failed"),
            ({"email": "ada@example.com", "password": ""}, 400, "validation_failed"),
            ({"email": "not an email", "password": PASSWORD}, 400, "validation_failed"),
            ({"password": PASSWORD}, 422, "anonymous_provider_disabled"),
            ({"phone": "+15550100", "password": PASSWORD}, 400, "phone_provider_disabled"),
            ({"email": "ada@example.com", "password": "1234567"}, 422, "weak_password"),
            ({"email": "ada@example.com", "password": "x" * 1025}, 400, "validation_failed"),
            ({"email": ["ada@example.com"], "password": PASSWORD}, 400, "validation_failed"),
            ({"email": "a@example.com", "password": PASSWORD, "data": {"n": "\x00"}}, 400,
             "validation_failed"),
        ],
    )  # fmt: skip
    async def test_invalid_sign_up_is_refused_with_gotrue_codes(
        self, gotrue, body, status, expected
    ):
        response = await gotrue.call("POST", "/signup", json=body)

        assert response.status_code == status
        assert code(response) == expected

    async def test_body_that_is_not_json_is_bad_json(self, gotrue):
        response = await gotrue.call("POST", "/signup", content=b"{not json")

        assert response.status_code == 400
        assert code(response) == "bad_json"

    async def test_a_password_is_never_echoed(self, gotrue):
        response = await gotrue.call(
            "POST", "/signup", json={"email": unique_email(), "password": "s3cr"}
        )

        assert "s3cr" not in response.text


class TestPasswordGrant:
    async def test_sign_in_returns_a_session(self, gotrue):
        email = unique_email()
        await gotrue.signup(email)

        response = await gotrue.sign_in(email.upper())

        assert response.status_code == 200
        assert response.json()["user"]["email"] == email
        assert response.json()["user"]["last_sign_in_at"]

    async def test_sign_in_accepts_the_fields_clients_add(self, gotrue):
        email = unique_email()
        await gotrue.signup(email)

        response = await gotrue.call(
            "POST",
            "/token",
            params={"grant_type": "password"},
            json={"email": email, "password": PASSWORD, "data": {}, "gotrue_meta_security": {}},
            headers={"Content-Type": "application/json;charset=UTF-8"},
        )

        assert response.status_code == 200

    @pytest.mark.parametrize("known", [True, False])
    async def test_wrong_password_and_unknown_email_are_the_same_error(self, gotrue, known):
        email = unique_email()
        if known:
            await gotrue.signup(email)

        response = await gotrue.sign_in(email, "wrong password")

        assert response.status_code == 400
        assert code(response) == "invalid_credentials"

    async def test_unsupported_grant_type_is_invalid_credentials(self, gotrue):
        response = await gotrue.call("POST", "/token", params={"grant_type": "magic"}, json={})

        assert response.status_code == 400
        assert code(response) == "invalid_credentials"
        assert response.json()["message"] == "unsupported_grant_type"

    async def test_sign_in_without_email_is_validation_failed(self, gotrue):
        response = await gotrue.call(
            "POST", "/token", params={"grant_type": "password"}, json={"password": PASSWORD}
        )

        assert response.status_code == 400
        assert code(response) == "validation_failed"

    async def test_sign_in_limits_count_password_grants_with_auth_signins(self, make_gotrue):
        gotrue = await make_gotrue(rate_limit_signin_per_account="2/minute")
        email = unique_email()
        await gotrue.session(email)
        csrf = (await gotrue.client.get("/auth/csrf")).json()["csrfToken"]
        await gotrue.client.post(
            "/auth/signin",
            json={"email": email, "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        await gotrue.sign_in(email)

        refused = await gotrue.sign_in(email)

        assert refused.status_code == 429
        assert code(refused) == "over_request_rate_limit"
        assert int(refused.headers["retry-after"]) >= 1


class TestRefreshGrant:
    async def test_refresh_rotates_the_token(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.refresh(session["refresh_token"])

        assert response.status_code == 200
        assert response.json()["refresh_token"] != session["refresh_token"]
        assert response.json()["user"]["id"] == session["user"]["id"]

    async def test_reuse_within_the_interval_returns_the_current_token(self, gotrue):
        session = await gotrue.session()
        first = await gotrue.refresh(session["refresh_token"])

        again = await gotrue.refresh(session["refresh_token"])

        assert again.status_code == 200
        assert again.json()["refresh_token"] == first.json()["refresh_token"]

    async def test_reuse_after_the_interval_revokes_the_session(self, make_gotrue):
        gotrue = await make_gotrue(refresh_reuse_interval_seconds=0)
        session = await gotrue.session()
        successor = (await gotrue.refresh(session["refresh_token"])).json()["refresh_token"]

        reused = await gotrue.refresh(session["refresh_token"])
        after = await gotrue.refresh(successor)

        assert reused.status_code == 400
        assert code(reused) == "refresh_token_already_used"
        assert after.status_code == 400
        assert code(after) == "refresh_token_not_found"

    async def test_unknown_token_is_refresh_token_not_found(self, gotrue):
        response = await gotrue.refresh("x" * 43)

        assert response.status_code == 400
        assert code(response) == "refresh_token_not_found"

    async def test_malformed_token_is_validation_failed(self, gotrue):
        response = await gotrue.refresh("short")

        assert response.status_code == 400
        assert code(response) == "validation_failed"

    async def test_missing_token_is_an_oauth_error(self, gotrue):
        response = await gotrue.refresh(None)

        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "refresh_token required",
        }


class TestGetUser:
    async def test_get_user_returns_the_bare_user(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call("GET", "/user", bearer=session["access_token"])

        assert response.status_code == 200
        assert response.json()["id"] == session["user"]["id"]
        assert set(response.json()) >= USER_FIELDS

    async def test_no_bearer_is_no_authorization(self, gotrue):
        response = await gotrue.call("GET", "/user")

        assert response.status_code == 401
        assert code(response) == "no_authorization"

    @pytest.mark.parametrize("bearer", ["garbage", "test-anon-key", "a.b.c"])
    async def test_a_bearer_that_is_not_a_valid_jwt_is_bad_jwt(self, gotrue, bearer):
        response = await gotrue.call("GET", "/user", bearer=bearer)

        assert response.status_code == 403
        assert code(response) == "bad_jwt"

    async def test_a_forged_signature_is_bad_jwt(self, gotrue):
        session = await gotrue.session()
        header, payload, _ = session["access_token"].split(".")

        response = await gotrue.call("GET", "/user", bearer=f"{header}.{payload}.AAAA")

        assert response.status_code == 403
        assert code(response) == "bad_jwt"

    async def test_signed_out_session_is_session_not_found(self, gotrue):
        session = await gotrue.session()
        await gotrue.call("POST", "/logout", bearer=session["access_token"])

        response = await gotrue.call("GET", "/user", bearer=session["access_token"])

        assert response.status_code == 403
        assert code(response) == "session_not_found"

    async def test_deleted_user_is_user_not_found(self, gotrue):
        session = await gotrue.session()
        await gotrue.admin("DELETE", f"/users/{session['user']['id']}")

        response = await gotrue.call("GET", "/user", bearer=session["access_token"])

        assert response.status_code == 403
        assert code(response) == "user_not_found"


class TestUpdateUser:
    async def test_data_is_merged_and_null_deletes_a_key(self, gotrue):
        session = await gotrue.session(data={"display_name": "Ada", "plan": "free"})

        response = await gotrue.call(
            "PUT",
            "/user",
            bearer=session["access_token"],
            json={"data": {"plan": None, "theme": "dark"}, "code_challenge": None},
        )

        assert response.status_code == 200
        assert response.json()["user_metadata"] == {"display_name": "Ada", "theme": "dark"}

    async def test_new_password_ends_the_other_sessions_and_keeps_this_one(self, gotrue):
        email = unique_email()
        this = await gotrue.session(email)
        other = (await gotrue.sign_in(email)).json()

        response = await gotrue.call(
            "PUT", "/user", bearer=this["access_token"], json={"password": "a new passphrase"}
        )

        assert response.status_code == 200
        assert (await gotrue.refresh(this["refresh_token"])).status_code == 200
        assert code(await gotrue.refresh(other["refresh_token"])) == "refresh_token_not_found"
        assert (await gotrue.sign_in(email, "a new passphrase")).status_code == 200
        assert code(await gotrue.sign_in(email)) == "invalid_credentials"

    async def test_same_password_is_same_password(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"password": PASSWORD}
        )

        assert response.status_code == 422
        assert code(response) == "same_password"

    async def test_weak_password_is_weak_password(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"password": "short"}
        )

        assert response.status_code == 422
        assert code(response) == "weak_password"
        assert response.json()["weak_password"]["reasons"] == ["length"]

    async def test_common_password_is_weak_password_pwned(self, gotrue):
        """A password of the common-password list, named as GoTrue names a breached one."""
        session = await gotrue.session()

        response = await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"password": "password123"}
        )

        assert response.status_code == 422
        assert code(response) == "weak_password"
        assert response.json()["weak_password"]["reasons"] == ["pwned"]

    async def test_email_change_answers_new_email_and_changes_nothing_yet(self, gotrue):
        """GoTrue `user.go`: `new_email` in the answer; the address changes on verify
        (test_lifecycle.py follows the link)."""
        session = await gotrue.session()
        new_email = unique_email()

        response = await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"email": new_email}
        )

        assert response.status_code == 200
        assert response.json()["new_email"] == new_email
        assert response.json()["email"] == session["user"]["email"]


class TestLogout:
    async def _three_sessions(self, gotrue):
        email = unique_email()
        first = await gotrue.session(email)
        return [first] + [(await gotrue.sign_in(email)).json() for _ in range(2)]

    async def _alive(self, gotrue, sessions) -> list[bool]:
        return [
            (await gotrue.call("GET", "/user", bearer=s["access_token"])).status_code == 200
            for s in sessions
        ]

    @pytest.mark.parametrize(
        ("scope", "alive"),
        [
            (None, [False, False, False]),
            ("global", [False, False, False]),
            ("local", [False, True, True]),
            ("others", [True, False, False]),
        ],
    )
    async def test_logout_ends_the_sessions_its_scope_names(self, gotrue, scope, alive):
        sessions = await self._three_sessions(gotrue)
        params = {"scope": scope} if scope else {}

        response = await gotrue.call(
            "POST", "/logout", bearer=sessions[0]["access_token"], params=params
        )

        assert response.status_code == 204
        assert response.content == b""
        assert await self._alive(gotrue, sessions) == alive
        refreshed = [await gotrue.refresh(s["refresh_token"]) for s in sessions]
        assert [r.status_code == 200 for r in refreshed] == alive

    async def test_unknown_scope_is_validation_failed(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "POST", "/logout", bearer=session["access_token"], params={"scope": "everything"}
        )

        assert response.status_code == 400
        assert code(response) == "validation_failed"
        assert response.json()["message"] == 'Unsupported logout scope "everything"'

    async def test_logout_twice_is_session_not_found(self, gotrue):
        session = await gotrue.session()
        await gotrue.call("POST", "/logout", bearer=session["access_token"])

        response = await gotrue.call("POST", "/logout", bearer=session["access_token"])

        assert response.status_code == 403
        assert code(response) == "session_not_found"
