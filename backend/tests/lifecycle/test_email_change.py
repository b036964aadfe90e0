"""POST /auth/email (DESIGN §12): a link to the new address, a notice without token to the old
one; nothing changes until `POST /auth/email/verify`, which re-checks that the address is free."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from backend.tests.helpers import PASSWORD, ApiUser, AuthApi, unique_email
from backend.tests.lifecycle.mailbox import count_to, mails_to, token_of
from backend.tests.providers import both_identity_providers  # noqa: F401 -- runs under both


def _outbox(app: Any) -> Path:
    path: Path = app.state.services.settings.data_dir / "outbox"
    return path


async def _change(api: AuthApi, user: ApiUser, new_email: str, password: str = PASSWORD):
    return await api.client.post(
        "/auth/email",
        json={"newEmail": new_email, "currentPassword": password},
        headers=user.auth,
    )


async def _mails_to(outbox: Path, *recipients: str, count: int = 1) -> dict[str, str]:
    """The newest mail to each recipient."""
    return {to: (await mails_to(outbox, to, count))[-1] for to in recipients}


class TestRequestEmailChange:
    async def test_link_to_new_notice_to_old_nothing_changes_yet(self, api, user, app):
        new_email = unique_email()

        response = await _change(api, user, new_email)

        assert (response.status_code, response.json()) == (202, {"ok": True})
        mails = await _mails_to(_outbox(app), new_email, user.email)
        assert token_of(mails[new_email], "confirm-email")
        assert "token=" not in mails[user.email]
        assert new_email in mails[user.email]
        me = await api.client.get("/auth/me", headers=user.auth)
        assert me.json()["user"]["email"] == user.email
        assert (await api.signin(user.email)).status_code == 200

    async def test_confirming_applies_the_change(self, api, user, app):
        new_email = unique_email()
        await _change(api, user, new_email)
        token = token_of((await _mails_to(_outbox(app), new_email))[new_email], "confirm-email")

        verified = await api.post("/auth/email/verify", {"token": token})

        assert verified.status_code == 200, verified.text
        assert verified.json() == {
            "user": {"id": user.id, "email": new_email, "emailConfirmed": True}
        }
        assert (await api.signin(user.email)).status_code == 401
        assert (await api.signin(new_email)).status_code == 200
        again = await api.post("/auth/email/verify", {"token": token})
        assert (again.status_code, again.json()["code"]) == (400, "token_invalid")

    async def test_wrong_password_is_403_and_mails_nothing(self, api, user, app):
        new_email = unique_email()
        response = await _change(api, user, new_email, "not the password at all")

        assert (response.status_code, response.json()["code"]) == (403, "invalid_current_password")
        await asyncio.sleep(0.2)
        assert (count_to(_outbox(app), new_email), count_to(_outbox(app), user.email)) == (0, 0)

    async def test_taken_address_is_409_whatever_its_spelling(self, api, user):
        other = unique_email()
        assert (await api.signup(other)).status_code == 201

        response = await _change(api, user, other.upper())

        assert (response.status_code, response.json()["code"]) == (409, "user_already_exists")

    async def test_taken_meanwhile_is_409_at_confirm(self, api, user, app):
        new_email = unique_email()
        await _change(api, user, new_email)
        token = token_of((await _mails_to(_outbox(app), new_email))[new_email], "confirm-email")
        assert (await api.signup(new_email)).status_code == 201

        response = await api.post("/auth/email/verify", {"token": token})

        assert (response.status_code, response.json()["code"]) == (409, "user_already_exists")
        assert (await api.signin(user.email)).status_code == 200

    async def test_a_newer_request_spends_the_older_link(self, api, user, app):
        first, second = unique_email(), unique_email()
        await _change(api, user, first)
        old = token_of((await _mails_to(_outbox(app), first))[first], "confirm-email")
        await _change(api, user, second)
        new = token_of((await _mails_to(_outbox(app), second))[second], "confirm-email")

        stale = await api.post("/auth/email/verify", {"token": old})
        assert (stale.status_code, stale.json()["code"]) == (400, "token_invalid")
        assert (await api.post("/auth/email/verify", {"token": new})).status_code == 200

    async def test_needs_a_bearer_token(self, api):
        response = await api.post(
            "/auth/email", {"newEmail": unique_email(), "currentPassword": PASSWORD}
        )

        assert response.status_code == 401

    async def test_malformed_new_email_is_422(self, api, user):
        response = await _change(api, user, "nope")

        assert (response.status_code, response.json()["code"]) == (422, "validation_error")

    async def test_wrong_passwords_are_rate_limited_like_sign_in(self, make_api):
        api = await make_api(rate_limit_signin_per_account="3/minute")
        user = await api.signed_in_user()  # the sign-in counts once
        answers = [
            (await _change(api, user, unique_email(), "wrong password here")).status_code
            for _ in range(3)
        ]

        assert answers == [403, 403, 429]

    async def test_new_address_counts_as_a_mail_recipient(self, make_api):
        api = await make_api(rate_limit_email_per_recipient="1/hour")
        user = await api.signed_in_user()
        new_email = unique_email()
        first = await _change(api, user, new_email)
        assert first.status_code == 202
        limited = await api.post("/auth/password/forgot", {"email": new_email})

        assert limited.status_code == 429
        assert "Retry-After" in limited.headers


async def test_reader_of_old_mailbox_cannot_confirm(api: AuthApi, user: ApiUser, app: Any) -> None:
    """The notice carries no link of any kind."""
    new_email = unique_email()
    await _change(api, user, new_email)
    notice = (await _mails_to(_outbox(app), user.email))[user.email]
    assert "confirm-email" not in notice
    assert "reset-password" not in notice
    assert isinstance(api.client, httpx.AsyncClient)
