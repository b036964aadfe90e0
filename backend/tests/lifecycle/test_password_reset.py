"""POST /auth/password/forgot and /auth/password/reset (DESIGN §12): the link by mail, the same
answer for unknown addresses, single-use expiring tokens, every other session ended."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from backend.app.db.tables import identity_account_tokens, mail_outbox, utcnow
from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from backend.tests.lifecycle.accounts import delete_user, tokens_per_mail
from backend.tests.lifecycle.mailbox import eml_files, requests_resolved, token_of
from backend.tests.mail.smtp_server import SmtpServer
from backend.tests.providers import both_identity_providers  # noqa: F401 -- runs under both

NEW_PASSWORD = "a brand new passphrase 42"


def _browser(api: AuthApi) -> AuthApi:
    return AuthApi(httpx.AsyncClient(transport=api.client._transport, base_url="http://testserver"))


async def _reset_token(api: AuthApi, email: str, outbox, count: int = 1) -> str:
    forgot = await api.post("/auth/password/forgot", {"email": email})
    assert forgot.status_code == 202, forgot.text
    return token_of((await eml_files(outbox, count))[-1], "reset-password")


class TestForgotPassword:
    async def test_known_and_unknown_addresses_get_the_same_answer(self, api, user, app):
        """202 {ok: true} for both; only the known one is mailed."""
        outbox = app.state.services.settings.data_dir / "outbox"

        known = await api.post("/auth/password/forgot", {"email": user.email})
        unknown = await api.post("/auth/password/forgot", {"email": unique_email()})

        assert (known.status_code, known.json()) == (202, {"ok": True})
        assert (unknown.status_code, unknown.content) == (202, known.content)
        (mail,) = await eml_files(outbox, 1)
        assert f"To: {user.email}" in mail
        await asyncio.sleep(0.2)
        assert len(list(outbox.glob("*.eml"))) == 1

    async def test_only_the_known_address_leaves_a_token_and_a_mail(self, api, user, app):
        """Both requests take one path (the statements: test_enumeration.py); once the sender
        has resolved them, only the known one has a token and an outbox row."""
        unknown_email = unique_email()

        known = await api.post("/auth/password/forgot", {"email": user.email})
        unknown = await api.post("/auth/password/forgot", {"email": unknown_email})
        await requests_resolved(app.state.services.database)

        assert (known.status_code, unknown.status_code) == (202, 202)

        def recipients(conn: sa.Connection) -> list[str]:
            chosen = mail_outbox.c.recipient.in_([user.email, unknown_email])
            return list(conn.execute(sa.select(mail_outbox.c.recipient).where(chosen)).scalars())

        def tokens(conn: sa.Connection) -> int:
            count = sa.select(sa.func.count()).select_from(identity_account_tokens)
            return conn.execute(
                count.where(identity_account_tokens.c.user_id == user.id)
            ).scalar_one()

        assert await app.state.services.database.read(recipients) == [user.email]
        assert await app.state.services.database.read(tokens) == tokens_per_mail(app.state.services)

    async def test_malformed_email_is_422(self, api):
        """Not an address: 422 validation_error."""
        response = await api.post("/auth/password/forgot", {"email": "not-an-address"})

        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"

    async def test_without_csrf_is_403(self, api, user):
        """No X-CSRF-Token: 403 csrf_missing."""
        response = await api.client.post("/auth/password/forgot", json={"email": user.email})

        assert response.status_code == 403
        assert response.json()["code"] == "csrf_missing"

    async def test_per_recipient_limit_counts_unknown_addresses_too(self, make_api):
        """The limit refuses an unknown address as it would a known one: 429 + Retry-After."""
        api = await make_api(rate_limit_email_per_recipient="2/hour")
        email = unique_email()  # no account
        answers = [
            (await api.post("/auth/password/forgot", {"email": email})).status_code
            for _ in range(3)
        ]

        assert answers == [202, 202, 429]

    async def test_per_address_limit_across_recipients(self, make_api):
        """RATE_LIMIT_EMAIL_PER_ADDRESS counts one client's requests whatever the recipient."""
        api = await make_api(rate_limit_email_per_address="2/hour")
        answers = [
            (await api.post("/auth/password/forgot", {"email": unique_email()})).status_code
            for _ in range(3)
        ]

        assert answers == [202, 202, 429]


class TestResetPassword:
    async def test_reset_signs_in_and_ends_every_other_session(self, api, user, app):
        """200 with the sign-in body and cookie; old sessions end; new password works."""
        outbox = app.state.services.settings.data_dir / "outbox"
        old_refresh = api.refresh_cookie
        token = await _reset_token(api, user.email, outbox)
        reader = _browser(api)

        response = await reader.post(
            "/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
        )

        assert response.status_code == 200, response.text
        assert set(response.json()) >= {"accessToken", "expiresAt", "csrfToken", "user"}
        assert reader.refresh_cookie is not None
        assert reader.refresh_cookie != old_refresh
        assert (await api.client.get("/auth/me", headers=user.auth)).status_code == 401
        assert (await api.refresh()).json()["code"] == "refresh_token_invalid"
        assert (await reader.refresh()).status_code == 200
        assert (await api.signin(user.email, PASSWORD)).status_code == 401
        assert (await api.signin(user.email, NEW_PASSWORD)).status_code == 200
        await reader.client.aclose()

    async def test_a_token_works_once(self, api, user, app):
        """The second use of a spent token: 400 token_invalid."""
        token = await _reset_token(api, user.email, app.state.services.settings.data_dir / "outbox")
        first = await api.post("/auth/password/reset", {"token": token, "password": NEW_PASSWORD})

        again = await api.post(
            "/auth/password/reset", {"token": token, "password": "other pass 99"}
        )

        assert first.status_code == 200
        assert (again.status_code, again.json()["code"]) == (400, "token_invalid")
        assert token not in again.text

    async def test_a_newer_token_spends_the_older(self, api, user, app):
        """Two forgot requests: only the second link works."""
        outbox = app.state.services.settings.data_dir / "outbox"
        older = await _reset_token(api, user.email, outbox, 1)
        newer = await _reset_token(api, user.email, outbox, 2)

        stale = await api.post("/auth/password/reset", {"token": older, "password": NEW_PASSWORD})
        fresh = await api.post("/auth/password/reset", {"token": newer, "password": NEW_PASSWORD})

        assert stale.status_code == 400
        assert fresh.status_code == 200

    async def test_an_expired_token_is_refused(self, api, user, app):
        """Past expires_at: 400 token_invalid."""
        services = app.state.services
        token = await _reset_token(api, user.email, services.settings.data_dir / "outbox")
        await services.database.write(
            lambda conn: conn.execute(
                identity_account_tokens.update().values(expires_at=utcnow() - timedelta(seconds=1))
            )
        )

        response = await api.post(
            "/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
        )

        assert (response.status_code, response.json()["code"]) == (400, "token_invalid")

    async def test_a_weak_password_leaves_the_token_usable(self, api, user, app):
        """422 weak_password, then the same token with a good password: 200."""
        token = await _reset_token(api, user.email, app.state.services.settings.data_dir / "outbox")
        weak = await api.post("/auth/password/reset", {"token": token, "password": "short"})

        good = await api.post("/auth/password/reset", {"token": token, "password": NEW_PASSWORD})

        assert (weak.status_code, weak.json()["code"]) == (422, "weak_password")
        assert good.status_code == 200

    async def test_a_password_change_spends_outstanding_reset_tokens(self, api, user, app):
        """After POST /auth/password, a reset link mailed before it no longer works."""
        token = await _reset_token(api, user.email, app.state.services.settings.data_dir / "outbox")
        changed = await api.client.post(
            "/auth/password",
            json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
            headers=user.auth,
        )

        response = await api.post("/auth/password/reset", {"token": token, "password": "x" * 12})

        assert changed.status_code == 200
        assert response.status_code == 400

    async def test_reset_of_a_deleted_user_is_400(self, api, user, app):
        """The user was deleted after the mail: the token died with it."""
        services = app.state.services
        token = await _reset_token(api, user.email, services.settings.data_dir / "outbox")
        await delete_user(services, user.id)

        response = await api.post(
            "/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
        )

        assert response.status_code == 400

    async def test_two_racing_resets_one_wins(self, api, user, app):
        """Two resets with one token at once: exactly one 200."""
        token = await _reset_token(api, user.email, app.state.services.settings.data_dir / "outbox")
        other = _browser(api)

        answers = await asyncio.gather(
            api.post("/auth/password/reset", {"token": token, "password": NEW_PASSWORD}),
            other.post("/auth/password/reset", {"token": token, "password": "another one 77"}),
        )

        assert sorted(a.status_code for a in answers) == [200, 400]
        await other.client.aclose()

    async def test_the_token_is_stored_only_as_its_sha256(self, api, user, app):
        """The table holds a 64-hex digest, never the token."""
        services = app.state.services
        token = await _reset_token(api, user.email, services.settings.data_dir / "outbox")

        rows = await services.database.read(
            lambda conn: conn.execute(sa.select(identity_account_tokens.c.token_hash)).all()
        )

        assert [len(row.token_hash) for row in rows] == [64] * tokens_per_mail(services)
        assert token not in str(rows)
        assert len(token) >= 43


class TestResetPasswordEmbedded:
    """What only the embedded provider can do: list sessions (GoTrue offers no user a list),
    and judge a token before the password (GoTrue spends a token when it verifies it; the
    supabase provider checks the password first, see test_supabase_provider.py)."""

    @pytest.fixture
    def identity_provider(self) -> str:
        return "embedded"

    async def test_reset_records_the_user_agent(self, api, user, app):
        """The session a reset opens shows the reset request's User-Agent in the list."""
        token = await _reset_token(api, user.email, app.state.services.settings.data_dir / "outbox")
        agent = "Mozilla/5.0 (iPhone) Safari/605.1.15"

        reset = await api.post(
            "/auth/password/reset",
            {"token": token, "password": NEW_PASSWORD},
            headers={"User-Agent": agent},
        )

        assert reset.status_code == 200, reset.text
        bearer = {"Authorization": f"Bearer {reset.json()['accessToken']}"}
        listed = (await api.client.get("/auth/sessions", headers=bearer)).json()["sessions"]
        assert [(s["current"], s["userAgent"]) for s in listed] == [(True, agent)]

    async def test_an_unknown_token_is_400_whatever_the_password(self, api):
        """A made-up token with a too-short password: the token is judged first (400)."""
        response = await api.post("/auth/password/reset", {"token": "made-up", "password": "x"})

        assert (response.status_code, response.json()["code"]) == (400, "token_invalid")


class TestResetThroughSmtp:
    async def test_the_link_arrives_by_smtp_and_resets(self, make_api, make_smtp_server):
        """End to end with a real SMTP server (aiosmtpd): forgot, read the mail, follow it."""
        server: SmtpServer = make_smtp_server()
        api = await make_api(smtp_host="127.0.0.1", smtp_port=server.port, smtp_tls="none")
        user = await api.signed_in_user()

        assert (await api.post("/auth/password/forgot", {"email": user.email})).status_code == 202
        for _ in range(250):
            if server.received:
                break
            await asyncio.sleep(0.02)
        (received,) = server.received
        plain = received.message.get_body(("plain",))
        assert plain is not None
        body = plain.get_content()
        token = token_of(body, "reset-password")
        response = await api.post(
            "/auth/password/reset", {"token": token, "password": NEW_PASSWORD}
        )

        assert received.rcpt_tos == [user.email]
        assert response.status_code == 200
        assert (await api.signin(user.email, NEW_PASSWORD)).status_code == 200
