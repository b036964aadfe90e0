"""EMAIL_CONFIRMATION_REQUIRED (DESIGN §12): sign-up mails a link, sign-in waits for it,
`POST /auth/email/verify` confirms, `POST /auth/email/resend` mails a new one; off by default."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backend.app.db.tables import identity_account_tokens, utcnow
from backend.tests.helpers import AuthApi, unique_email
from backend.tests.lifecycle.accounts import email_confirmed_at, tokens_per_mail
from backend.tests.lifecycle.mailbox import count_to, mails_to, token_of
from backend.tests.providers import both_identity_providers  # noqa: F401 -- runs under both


class Confirming:
    def __init__(self, app: Any, api: AuthApi):
        self.app = app
        self.api = api
        self.outbox: Path = app.state.services.settings.data_dir / "outbox"

    async def token(self, to: str, count: int = 1) -> str:
        return token_of((await mails_to(self.outbox, to, count))[-1], "confirm-email")


@pytest.fixture
async def make_confirming(
    make_app: Callable[..., Any],
) -> AsyncIterator[Callable[..., Any]]:
    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> Confirming:
        app = await make_app(email_confirmation_required=True, **overrides)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        return Confirming(app, AuthApi(client))

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def confirming(make_confirming: Callable[..., Any]) -> Confirming:
    result: Confirming = await make_confirming()
    return result


async def _me(api: AuthApi, access_token: str) -> httpx.Response:
    return await api.client.get("/auth/me", headers={"Authorization": f"Bearer {access_token}"})


class TestConfirmationOff:
    async def test_signup_is_confirmed_at_once_and_mails_nothing(self, api, user, app):
        """The default: sign-in works at once, /auth/me says emailConfirmed true, no mail."""
        me = await _me(api, user.access_token)

        assert me.status_code == 200
        assert me.json()["user"]["emailConfirmed"] is True
        await asyncio.sleep(0.1)
        assert count_to(app.state.services.settings.data_dir / "outbox", user.email) == 0

    async def test_resend_is_202_and_mails_nothing(self, api, user, app):
        response = await api.post("/auth/email/resend", {"email": user.email})

        assert (response.status_code, response.json()) == (202, {"ok": True})
        await asyncio.sleep(0.1)
        assert count_to(app.state.services.settings.data_dir / "outbox", user.email) == 0


class TestConfirmationRequired:
    async def test_signup_mails_a_link_and_signin_waits_for_it(self, confirming):
        """201 {user}; the link is in the fragment; sign-in is 403 email_not_confirmed until the
        token is posted; then 200, and /auth/me says emailConfirmed true."""
        api, email = confirming.api, unique_email()
        signup = await api.signup(email)
        assert signup.status_code == 201, signup.text
        assert set(signup.json()["user"]) >= {"id", "email"}
        token = await confirming.token(email)

        refused = await api.signin(email)
        assert (refused.status_code, refused.json()["code"]) == (403, "email_not_confirmed")

        verified = await api.post("/auth/email/verify", {"token": token})
        assert verified.status_code == 200, verified.text
        assert verified.json() == {
            "user": {"id": signup.json()["user"]["id"], "email": email, "emailConfirmed": True}
        }
        signin = await api.signin(email)
        assert signin.status_code == 200, signin.text
        me = await _me(api, signin.json()["accessToken"])
        assert me.json()["user"]["emailConfirmed"] is True

    async def test_wrong_password_of_unconfirmed_address_reveals_nothing(self, confirming):
        api, email = confirming.api, unique_email()
        await api.signup(email)

        wrong = await api.signin(email, "not the password at all")
        unknown = await api.signin(unique_email(), "not the password at all")

        assert (wrong.status_code, wrong.json()["code"]) == (401, "auth_invalid_credentials")
        assert wrong.json() == unknown.json()

    async def test_token_is_single_use(self, confirming):
        api, email = confirming.api, unique_email()
        await api.signup(email)
        token = await confirming.token(email)

        first = await api.post("/auth/email/verify", {"token": token})
        again = await api.post("/auth/email/verify", {"token": token})

        assert first.status_code == 200
        assert (again.status_code, again.json()["code"]) == (400, "token_invalid")

    async def test_unknown_token_is_400(self, confirming):
        response = await confirming.api.post("/auth/email/verify", {"token": "x" * 43})

        assert (response.status_code, response.json()["code"]) == (400, "token_invalid")

    async def test_expired_token_is_400(self, confirming):
        api, email = confirming.api, unique_email()
        await api.signup(email)
        token = await confirming.token(email)

        def expire(conn: sa.Connection) -> None:
            conn.execute(
                identity_account_tokens.update().values(expires_at=utcnow() - timedelta(seconds=1))
            )

        await confirming.app.state.services.database.write(expire)
        response = await api.post("/auth/email/verify", {"token": token})

        assert (response.status_code, response.json()["code"]) == (400, "token_invalid")
        assert (await api.signin(email)).status_code == 403

    async def test_ttl_is_email_confirm_ttl_seconds(self, make_confirming):
        confirming = await make_confirming(email_confirm_ttl_seconds=600)
        email = unique_email()
        await confirming.api.signup(email)
        await confirming.token(email)

        def lifetimes(conn: sa.Connection) -> list[Any]:
            rows = conn.execute(
                sa.select(
                    identity_account_tokens.c.created_at, identity_account_tokens.c.expires_at
                )
            ).all()
            return [row.expires_at - row.created_at for row in rows]

        services = confirming.app.state.services
        found = await services.database.read(lifetimes)
        assert len(found) == tokens_per_mail(services)
        assert all(abs(lifetime.total_seconds() - 600) < 5 for lifetime in found)

    async def test_stored_as_sha256_only(self, confirming):
        email = unique_email()
        await confirming.api.signup(email)
        token = await confirming.token(email)

        def hashes(conn: sa.Connection) -> list[str]:
            return list(conn.execute(sa.select(identity_account_tokens.c.token_hash)).scalars())

        services = confirming.app.state.services
        stored = await services.database.read(hashes)
        assert hashlib.sha256(token.encode()).hexdigest() in stored
        assert [len(digest) for digest in stored] == [64] * tokens_per_mail(services)
        assert token not in stored

    async def test_a_reset_token_does_not_confirm(self, confirming):
        """Kinds never mix: a reset link posted to /auth/email/verify is 400."""
        api, email = confirming.api, unique_email()
        await api.signup(email)
        await confirming.token(email)
        await api.post("/auth/password/forgot", {"email": email})
        reset = token_of((await mails_to(confirming.outbox, email, 2))[-1], "reset-password")

        response = await api.post("/auth/email/verify", {"token": reset})

        assert (response.status_code, response.json()["code"]) == (400, "token_invalid")

    async def test_signup_stores_the_user_unconfirmed(self, confirming):
        api, email = confirming.api, unique_email()
        await api.signup(email)
        await confirming.token(email)
        assert await email_confirmed_at(confirming.app.state.services, email) is None

    async def test_verify_needs_csrf(self, confirming):
        response = await confirming.api.client.post("/auth/email/verify", json={"token": "x"})

        assert (response.status_code, response.json()["code"]) == (403, "csrf_missing")

    async def test_resend_needs_csrf(self, confirming):
        response = await confirming.api.client.post(
            "/auth/email/resend", json={"email": unique_email()}
        )

        assert (response.status_code, response.json()["code"]) == (403, "csrf_missing")


class TestResend:
    async def test_resend_mails_a_new_link_and_spends_the_old(self, confirming):
        api, email = confirming.api, unique_email()
        await api.signup(email)
        old = await confirming.token(email)

        response = await api.post("/auth/email/resend", {"email": email})
        assert (response.status_code, response.json()) == (202, {"ok": True})
        new = await confirming.token(email, 2)

        assert new != old
        stale = await api.post("/auth/email/verify", {"token": old})
        assert (stale.status_code, stale.json()["code"]) == (400, "token_invalid")
        assert (await api.post("/auth/email/verify", {"token": new})).status_code == 200

    async def test_same_answer_for_unknown_and_confirmed_addresses(self, confirming):
        """202 for any address; only an unconfirmed sign-up is mailed."""
        api, email = confirming.api, unique_email()
        await api.signup(email)
        token = await confirming.token(email)
        await api.post("/auth/email/verify", {"token": token})

        pending = unique_email()
        await api.signup(pending)
        await confirming.token(pending)
        answers = [
            await api.post("/auth/email/resend", {"email": address})
            for address in (email, unique_email(), pending)
        ]

        assert {(a.status_code, a.content) for a in answers} == {(202, answers[0].content)}
        await mails_to(confirming.outbox, pending, 2)
        await asyncio.sleep(0.2)
        assert count_to(confirming.outbox, email) == 1
        assert count_to(confirming.outbox, pending) == 2

    async def test_malformed_email_is_422(self, confirming):
        response = await confirming.api.post("/auth/email/resend", {"email": "nope"})

        assert (response.status_code, response.json()["code"]) == (422, "validation_error")

    async def test_per_recipient_limit(self, make_confirming):
        """Sign-up's confirmation and resend count as one recipient's mails; unknown too."""
        confirming = await make_confirming(rate_limit_email_per_recipient="2/hour")
        email = unique_email()
        answers = [
            (await confirming.api.post("/auth/email/resend", {"email": email})).status_code
            for _ in range(3)
        ]

        assert answers == [202, 202, 429]

    async def test_per_address_limit(self, make_confirming):
        confirming = await make_confirming(rate_limit_email_per_address="2/hour")
        answers = [
            (await confirming.api.post("/auth/email/resend", {"email": unique_email()})).status_code
            for _ in range(3)
        ]

        assert answers[:2] == [202, 202]
        assert answers[2] == 429

    async def test_signup_counts_toward_the_recipient_limit(self, make_confirming):
        confirming = await make_confirming(rate_limit_email_per_recipient="2/hour")
        email = unique_email()
        assert (await confirming.api.signup(email)).status_code == 201
        first = await confirming.api.post("/auth/email/resend", {"email": email})
        second = await confirming.api.post("/auth/email/resend", {"email": email})

        assert (first.status_code, second.status_code) == (202, 429)
        assert "Retry-After" in second.headers
