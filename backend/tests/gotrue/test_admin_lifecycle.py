"""GoTrue's admin lifecycle routes: `PUT /admin/users/{id}`, `/invite`,
`/admin/generate_link` (GT `internal/api/admin.go`, `invite.go`, `mail.go`), on SQLite and
PostgreSQL. The clients' runs: test_supabase_py.py, test_supabase_js.py."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.mails import outbox_mails
from backend.tests.gotrue_server import SERVICE_ROLE_KEY
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
            {"ban_duration": "24"},  # no unit: Go's ParseDuration refuses it
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


def _query(link: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}


async def generate(gotrue, **body):
    return await gotrue.admin("POST", "/generate_link", json=body)


class TestInvite:
    async def test_the_invitation_link_confirms_and_signs_in(self, gotrue, tmp_path):
        email = unique_email()

        response = await gotrue.call(
            "POST",
            "/invite",
            key=SERVICE_ROLE_KEY,
            bearer=SERVICE_ROLE_KEY,
            json={"email": email, "data": {"a": 1}},
        )
        (mail,) = await outbox_mails(tmp_path / "data" / "outbox", email)
        verified = await gotrue.call(
            "POST", "/verify", json={"type": "invite", "token_hash": mail.token}
        )

        body = response.json()
        assert response.status_code == 200
        assert body["email"] == email
        assert body["user_metadata"] == {"a": 1}
        assert "invited_at" in body
        assert "confirmation_sent_at" in body
        assert "email_confirmed_at" not in body
        assert mail.query["type"] == "invite"
        assert verified.json()["user"]["email_confirmed_at"]

    async def test_a_confirmed_address_is_email_exists(self, gotrue):
        email = (await gotrue.session())["user"]["email"]

        response = await gotrue.call(
            "POST", "/invite", key=SERVICE_ROLE_KEY, bearer=SERVICE_ROLE_KEY, json={"email": email}
        )

        assert (response.status_code, response.json()["code"]) == (422, "email_exists")

    async def test_it_needs_the_admin(self, gotrue):
        response = await gotrue.call("POST", "/invite", json={"email": unique_email()})

        assert (response.status_code, response.json()["code"]) == (401, "no_authorization")

    async def test_disabled_sign_up_does_not_stop_it(self, make_gotrue):
        gotrue = await make_gotrue(gotrue_disable_signup=True)

        response = await gotrue.call(
            "POST",
            "/invite",
            key=SERVICE_ROLE_KEY,
            bearer=SERVICE_ROLE_KEY,
            json={"email": unique_email()},
        )

        assert response.status_code == 200


class TestGenerateLink:
    @pytest.mark.parametrize("kind", ["recovery", "magiclink"])
    async def test_a_sign_in_link_for_a_user(self, gotrue, tmp_path, kind):
        email = (await gotrue.session())["user"]["email"]

        response = await generate(gotrue, type=kind, email=email)
        body = response.json()
        by_hash = await gotrue.call(
            "POST", "/verify", json={"type": kind, "token_hash": body["hashed_token"]}
        )

        assert response.status_code == 200
        assert body["email"] == email
        assert body["verification_type"] == kind
        assert _query(body["action_link"])["token"] == body["hashed_token"]
        assert len(body["email_otp"]) == 6
        assert by_hash.status_code == 200
        assert not list((tmp_path / "data" / "outbox").glob("*.eml"))  # no mail

    async def test_the_code_works_too(self, gotrue):
        email = (await gotrue.session())["user"]["email"]
        body = (await generate(gotrue, type="recovery", email=email)).json()

        verified = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "email": email, "token": body["email_otp"]}
        )

        assert verified.status_code == 200

    async def test_magiclink_for_a_new_address_signs_it_up(self, gotrue):
        email = unique_email()

        body = (await generate(gotrue, type="magiclink", email=email)).json()
        verified = await gotrue.call(
            "POST", "/verify", json={"type": "signup", "token_hash": body["hashed_token"]}
        )

        assert body["verification_type"] == "signup"
        assert verified.status_code == 200

    async def test_signup_needs_a_password_and_confirms(self, gotrue):
        email = unique_email()

        missing = await generate(gotrue, type="signup", email=email)
        body = (await generate(gotrue, type="signup", email=email, password=PASSWORD)).json()
        await gotrue.call("GET", f"/verify?token={body['hashed_token']}&type=signup", key=None)

        assert (missing.status_code, missing.json()["message"]) == (
            400,
            "Signup requires a valid password",
        )
        assert (await gotrue.sign_in(email)).status_code == 200

    async def test_email_change_new_applies_the_change(self, make_gotrue):
        """One token, one verify: the secure email change off (its two tokens are
        test_secure_email_change.py's)."""
        gotrue = await make_gotrue(gotrue_mailer_secure_email_change_enabled=False)
        email, new_email = (await gotrue.session())["user"]["email"], unique_email()

        body = (
            await generate(gotrue, type="email_change_new", email=email, new_email=new_email)
        ).json()
        verified = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "token_hash": body["hashed_token"]}
        )

        assert verified.json()["user"]["email"] == new_email

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({"type": "recovery"}, 404, "user_not_found"),
            ({"type": "email_change_new", "new_email": "x@example.com"}, 404, "user_not_found"),
            ({"type": "nope"}, 400, "validation_failed"),
        ],
    )
    async def test_refusals_for_an_unknown_address(self, gotrue, body, status, code):
        response = await generate(gotrue, email=unique_email(), **body)

        assert (response.status_code, response.json()["code"]) == (status, code)

    async def test_signup_and_invite_of_a_confirmed_user_are_email_exists(self, gotrue):
        email = (await gotrue.session())["user"]["email"]

        for kind in ("signup", "invite"):
            response = await generate(gotrue, type=kind, email=email, password=PASSWORD)
            assert (response.status_code, response.json()["code"]) == (422, "email_exists")

    async def test_a_stranger_redirect_becomes_the_site(self, gotrue):
        email = (await gotrue.session())["user"]["email"]

        body = (
            await generate(gotrue, type="recovery", email=email, redirect_to="https://evil.example")
        ).json()

        assert body["redirect_to"] == SPA_ORIGIN
        assert _query(body["action_link"])["redirect_to"] == SPA_ORIGIN

    async def test_it_needs_the_admin(self, gotrue):
        session = await gotrue.session()

        response = await gotrue.call(
            "POST",
            "/admin/generate_link",
            bearer=session["access_token"],
            json={"type": "recovery", "email": session["user"]["email"]},
        )

        assert (response.status_code, response.json()["code"]) == (403, "not_admin")
