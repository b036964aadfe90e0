"""What the supabase provider does its own way in the account lifecycle (against the GoTrue
stand-in, backend/tests/gotrue_server.py); the lifecycle suites run under both providers and
hold the rest of the contract.

- Sessions cannot be listed or ended one by one: GoTrue offers neither, so 501 `not_supported`.
- A reset checks the password before the token: GoTrue spends a token when it verifies it.
- A current password is checked by a sign-in of its own, whose session is ended at once.
- GoTrue's refusal to mail (its own mail limits) is not passed on: it would tell a known
  address from an unknown one.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backend.app.db.tables import identity_sessions
from backend.tests.gotrue_server import gotrue_server, supabase_settings
from backend.tests.helpers import PASSWORD, ApiUser, AuthApi, unique_email
from backend.tests.lifecycle.mailbox import mails_to, token_of

NEW_PASSWORD = "a brand new passphrase 42"


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


async def _live_sessions(app: Any, user_id: str) -> int:
    """The user's live sessions at the project (the stand-in shares the test's database)."""

    def count(conn: sa.Connection) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(identity_sessions)
                .where(
                    identity_sessions.c.user_id == user_id,
                    identity_sessions.c.revoked_at.is_(None),
                )
            ).scalar_one()
        )

    live: int = await app.state.services.database.read(count)
    return live


class TestNotSupported:
    async def test_list_sessions_is_501(self, api: AuthApi, user: ApiUser):
        _assert_not_supported(await api.client.get("/auth/sessions", headers=user.auth))

    async def test_end_session_is_501(self, api: AuthApi, user: ApiUser):
        response = await api.client.delete(f"/auth/sessions/{uuid.uuid4()}", headers=user.auth)

        _assert_not_supported(response)

    async def test_logout_with_a_scope_works(self, api: AuthApi, user: ApiUser):
        """The scopes map onto GoTrue's own `/logout?scope=`: not a 501."""
        response = await api.logout(json={"scope": "global"})

        assert response.status_code == 200, response.text
        assert api.refresh_cookie is None


class TestPasswordChecks:
    async def test_a_reset_judges_the_password_before_the_token(self, api: AuthApi):
        """A made-up token with a too-short password: 422, where the embedded provider says
        400; a good token is never spent on a password that would be refused."""
        response = await api.post("/auth/password/reset", {"token": "made-up", "password": "x"})

        assert (response.status_code, response.json()["code"]) == (422, "weak_password")

    async def test_a_made_up_token_with_a_good_password_is_400(self, api: AuthApi):
        response = await api.post(
            "/auth/password/reset", {"token": "made-up", "password": NEW_PASSWORD}
        )

        assert (response.status_code, response.json()["code"]) == (400, "token_invalid")

    async def test_the_current_password_check_leaves_no_session(self, api, user, app):
        """Changing the email signs in once to check the password; that session is ended, so
        only the caller's own lives."""
        assert await _live_sessions(app, user.id) == 1

        response = await api.client.post(
            "/auth/email",
            json={"newEmail": unique_email(), "currentPassword": PASSWORD},
            headers=user.auth,
        )

        assert response.status_code == 202, response.text
        assert await _live_sessions(app, user.id) == 1

    async def test_a_wrong_current_password_leaves_no_session(self, api, user, app):
        response = await api.client.post(
            "/auth/email",
            json={"newEmail": unique_email(), "currentPassword": "not the password 1"},
            headers=user.auth,
        )

        assert (response.status_code, response.json()["code"]) == (403, "invalid_current_password")
        assert await _live_sessions(app, user.id) == 1

    async def test_a_reset_leaves_only_its_own_session(self, api, user, app):
        outbox = app.state.services.settings.data_dir / "outbox"
        assert (await api.post("/auth/password/forgot", {"email": user.email})).status_code == 202
        token = token_of((await mails_to(outbox, user.email))[-1], "reset-password")

        reset = await api.post("/auth/password/reset", {"token": token, "password": NEW_PASSWORD})

        assert reset.status_code == 200, reset.text
        assert await _live_sessions(app, user.id) == 1


class TestPasswordMinimum:
    async def test_a_lowered_minimum_applies_to_sign_up(self, make_api):
        """`PASSWORD_MIN_LENGTH=6` (outside production): the app's own check, made before
        GoTrue's, lets a 7-character password through, and GoTrue stores it."""
        api = await make_api(password_min_length=6)
        email = unique_email()

        signup = await api.signup(email, password="kq7#zvw")

        assert signup.status_code == 201, signup.text
        assert (await api.signin(email, "kq7#zvw")).status_code == 200


class TestGoTrueMailRefusals:
    @pytest.fixture
    def identity_provider(self) -> str:
        # This test starts its own project, with a mail limit of its own.
        return "embedded"

    async def test_a_refused_mail_is_still_202_and_logged(self, make_settings, make_api, caplog):
        """The project refuses a second reset mail to one address (429); the app answers 202 as
        for any address and logs the refusal for the operator, without the address."""
        with gotrue_server(make_settings, rate_limit_email_per_recipient="1/hour") as url:
            api = await make_api(**supabase_settings(url))
            user = await api.signed_in_user()
            first = await api.post("/auth/password/forgot", {"email": user.email})
            with caplog.at_level(logging.WARNING, logger="backend.app.identity.supabase"):
                second = await api.post("/auth/password/forgot", {"email": user.email})

        assert (first.status_code, second.status_code) == (202, 202)
        assert second.content == first.content
        (record,) = [r for r in caplog.records if r.name == "backend.app.identity.supabase"]
        assert "password reset" in record.getMessage()
        assert user.email not in record.getMessage()


class TestSecureEmailChangeLeftOn:
    @pytest.fixture
    def identity_provider(self) -> str:
        # This test starts its own project, with GoTrue's default left on.
        return "embedded"

    async def test_the_first_link_is_503_and_changes_nothing(
        self, make_settings, make_api, tmp_path
    ):
        """A project whose "Secure email change" is on (GoTrue's default; the README asks for
        it off): GoTrue accepts the new address's link without a session (the other address's
        is awaited), which the provider reports as 503 `provider_unavailable`."""
        confirming = {"email_confirmation_required": True}
        with gotrue_server(
            make_settings, gotrue_mailer_secure_email_change_enabled=True, **confirming
        ) as url:
            api = await make_api(**supabase_settings(url), **confirming)
            outbox = tmp_path / "data" / "outbox"
            email, new_email = unique_email(), unique_email()
            assert (await api.signup(email)).status_code == 201
            confirmation = token_of((await mails_to(outbox, email))[-1], "confirm-email")
            assert (
                await api.post("/auth/email/verify", {"token": confirmation})
            ).status_code == 200
            signin = await api.signin(email)
            bearer = {"Authorization": f"Bearer {signin.json()['accessToken']}"}
            asked = await api.post(
                "/auth/email",
                {"newEmail": new_email, "currentPassword": PASSWORD},
                headers=bearer,
            )
            link = token_of((await mails_to(outbox, new_email))[-1], "confirm-email")

            verified = await api.post("/auth/email/verify", {"token": link})
            me = await api.client.get("/auth/me", headers=bearer)

        assert asked.status_code == 202, asked.text
        assert (verified.status_code, verified.json()["code"]) == (503, "provider_unavailable")
        assert me.json()["user"]["email"] == email
