"""supabase-py, unchanged, against a live server on loopback: every call a Python app makes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from backend.app.identity.embedded import gotrue as gotrue_operations
from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.mails import received_mails
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, unique_email
from supabase import AsyncClient, AsyncClientOptions, acreate_client

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def clients(serve) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await clients(url, key=ANON_KEY, pkce=False)` -> (client, paths it requested).

    supabase-py's `acreate_client` defaults to the PKCE flow; the suites written for the
    implicit one (a link's session in the fragment) ask for it, `pkce=True` keeps the default."""
    opened: list[httpx.AsyncClient] = []

    async def make(
        url: str, key: str = ANON_KEY, *, pkce: bool = False
    ) -> tuple[AsyncClient, list[str]]:
        paths: list[str] = []

        async def record(request: httpx.Request) -> None:
            paths.append(f"{request.method} {request.url.path}")

        http = httpx.AsyncClient(event_hooks={"request": [record]})
        opened.append(http)
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=http
        )
        if not pkce:
            options.flow_type = "implicit"
        return await acreate_client(url, key, options=options), paths

    yield make
    for http in opened:
        await http.aclose()


async def api_error(call: Any) -> AuthApiError:
    with pytest.raises(AuthApiError) as caught:
        await call
    return caught.value


async def outcome(call: Any) -> str | None:
    """`ok`, or the code of the AuthApiError the call raised (supabase-py types its codes as a
    Literal that lacks some of GoTrue's, hence the str)."""
    try:
        await call
    except AuthApiError as exc:
        return str(exc.code)
    return "ok"


class TestSupabasePy:
    async def test_sign_up_sign_in_get_user_and_local_claims(self, serve, clients):
        with serve() as url:
            client, paths = await clients(url)
            email = unique_email()

            signed_up = await client.auth.sign_up(
                {"email": email, "password": PASSWORD, "options": {"data": {"plan": "free"}}}
            )
            signed_in = await client.auth.sign_in_with_password(
                {"email": email, "password": PASSWORD}
            )
            user = await client.auth.get_user()
            paths.clear()
            claims = await client.auth.get_claims()
            again = await client.auth.get_claims()

        assert signed_up.session is not None
        assert signed_up.user is not None
        assert signed_up.user.user_metadata == {"plan": "free"}
        assert signed_in.session is not None
        assert signed_in.user is not None
        assert user is not None
        assert user.user.email == email
        assert claims is not None
        assert again is not None
        assert claims["claims"]["sub"] == signed_in.user.id
        assert claims["claims"]["email"] == email
        # Verified with the JWKS, fetched once, never by asking /user.
        assert paths == ["GET /auth/v1/.well-known/jwks.json"]

    async def test_refresh_and_reuse_within_the_interval(self, serve, clients):
        with serve() as url:
            client, _ = await clients(url)
            session = (await client.auth.sign_up({"email": unique_email(),
                                                  "password": PASSWORD})).session  # fmt: skip
            assert session is not None

            first = await client.auth.refresh_session(session.refresh_token)
            twin = await client.auth.refresh_session(session.refresh_token)

        assert first.session is not None
        assert twin.session is not None
        assert first.session.refresh_token != session.refresh_token
        assert twin.session.refresh_token == first.session.refresh_token

    async def test_reuse_after_the_interval_is_refused_and_ends_the_session(self, serve, clients):
        with serve(refresh_reuse_interval_seconds=0) as url:
            client, _ = await clients(url)
            session = (await client.auth.sign_up({"email": unique_email(),
                                                  "password": PASSWORD})).session  # fmt: skip
            assert session is not None
            successor = (await client.auth.refresh_session(session.refresh_token)).session
            assert successor is not None

            reused = await api_error(client.auth.refresh_session(session.refresh_token))
            after = await api_error(client.auth.refresh_session(successor.refresh_token))

        assert (reused.status, str(reused.code)) == (400, "refresh_token_already_used")
        assert str(after.code) == "refresh_token_not_found"

    async def test_update_user_changes_password_and_data_and_ends_other_sessions(
        self, serve, clients
    ):
        with serve() as url:
            client, _ = await clients(url)
            other, _ = await clients(url)
            email = unique_email()
            await client.auth.sign_up(
                {"email": email, "password": PASSWORD, "options": {"data": {"a": 1, "b": 2}}}
            )
            other_session = (
                await other.auth.sign_in_with_password({"email": email, "password": PASSWORD})
            ).session
            assert other_session is not None

            updated = await client.auth.update_user(
                {"password": "a brand new passphrase", "data": {"b": None, "c": 3}}
            )
            refused = await outcome(other.auth.refresh_session(other_session.refresh_token))
            kept = await outcome(client.auth.refresh_session())

        assert updated.user.user_metadata == {"a": 1, "c": 3}
        assert refused == "refresh_token_not_found"
        assert kept == "ok"

    @pytest.mark.parametrize(
        ("scope", "alive"),
        [("global", [False, False]), ("local", [False, True]), ("others", [True, False])],
    )
    async def test_sign_out_revokes_the_sessions_of_its_scope(self, serve, clients, scope, alive):
        """The client swallows logout errors, so the server's state is what is checked."""
        with serve() as url:
            client, _ = await clients(url)
            other, _ = await clients(url)
            checker, _ = await clients(url)
            email = unique_email()
            own = (await client.auth.sign_up({"email": email, "password": PASSWORD})).session
            theirs = (
                await other.auth.sign_in_with_password({"email": email, "password": PASSWORD})
            ).session
            assert own is not None
            assert theirs is not None

            await client.auth.sign_out({"scope": scope})

            users = [await outcome(checker.auth.get_user(s.access_token)) for s in (own, theirs)]
            refreshes = [
                await outcome(checker.auth.refresh_session(s.refresh_token)) for s in (own, theirs)
            ]

        assert users == ["ok" if live else "session_not_found" for live in alive]
        assert refreshes == ["ok" if live else "refresh_token_not_found" for live in alive]

    async def test_admin_api(self, serve, clients):
        with serve() as url:
            admin, _ = await clients(url, SERVICE_ROLE_KEY)
            email = unique_email()

            created = await admin.auth.admin.create_user(
                {"email": email, "password": PASSWORD, "email_confirm": True,
                 "user_metadata": {"display_name": "Ada"}}
            )  # fmt: skip
            listed = await admin.auth.admin.list_users()
            paged = await admin.auth.admin.list_users(page=1, per_page=1)
            fetched = await admin.auth.admin.get_user_by_id(created.user.id)
            await admin.auth.admin.delete_user(created.user.id)
            gone = await api_error(admin.auth.admin.get_user_by_id(created.user.id))

        assert created.user.email == email
        assert created.user.user_metadata == {"display_name": "Ada"}
        assert [user.id for user in listed] == [created.user.id]
        assert len(paged) == 1
        assert fetched.user.id == created.user.id
        assert (gone.status, str(gone.code)) == (404, "user_not_found")

    async def test_each_error_code_the_client_exposes(self, serve, clients):
        with serve(rate_limit_signin_per_account="3/minute") as url:
            client, _ = await clients(url)
            admin, _ = await clients(url, SERVICE_ROLE_KEY)
            email = unique_email()
            session = (await client.auth.sign_up({"email": email, "password": PASSWORD})).session
            assert session is not None
            unconfirmed = unique_email()
            await admin.auth.admin.create_user({"email": unconfirmed, "password": PASSWORD})

            errors = {
                "invalid_credentials": await api_error(
                    client.auth.sign_in_with_password({"email": email, "password": "wrong!!!"})
                ),
                "user_already_exists": await api_error(
                    client.auth.sign_up({"email": email, "password": PASSWORD})
                ),
                "email_exists": await api_error(admin.auth.admin.create_user({"email": email})),
                "email_not_confirmed": await api_error(
                    client.auth.sign_in_with_password({"email": unconfirmed, "password": PASSWORD})
                ),
                "same_password": await api_error(client.auth.update_user({"password": PASSWORD})),
                "validation_failed": await api_error(
                    client.auth.sign_up({"email": "not-an-email", "password": PASSWORD})
                ),
                "refresh_token_not_found": await api_error(client.auth.refresh_session("x" * 43)),
                "not_admin": await api_error(client.auth.admin.list_users()),
            }
            with pytest.raises(AuthWeakPasswordError) as weak:
                await client.auth.sign_up({"email": unique_email(), "password": "short"})
            for _ in range(2):
                with contextlib.suppress(AuthApiError):
                    await client.auth.sign_in_with_password({"email": email, "password": "x"})
            errors["over_request_rate_limit"] = await api_error(
                client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
            )
            await client.auth.sign_out({"scope": "local"})
            errors["session_not_found"] = await api_error(
                client.auth.get_user(session.access_token)
            )
            await admin.auth.admin.delete_user(session.user.id)
            errors["user_not_found"] = await api_error(client.auth.get_user(session.access_token))

        assert {name: str(error.code) for name, error in errors.items()} == {
            name: name for name in errors
        }
        assert weak.value.code == "weak_password"
        assert weak.value.reasons == ["length"]


def _fragment(location: str) -> dict[str, str]:
    values = parse_qs(urlsplit(location).fragment, keep_blank_values=True)
    return {key: found[0] for key, found in values.items()}


@pytest.fixture
def mailing(serve, make_smtp_server):
    """Factory: `with mailing(**overrides) as (url, smtp):` the API with autoconfirm off,
    mailing through an SMTP server on loopback."""
    smtp = make_smtp_server()

    @contextlib.contextmanager
    def run(**overrides: Any):
        settings = {
            "gotrue_mailer_autoconfirm": False,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_tls": "none",
        }
        with serve(**(settings | overrides)) as url:
            yield url, smtp

    return run


class TestLifecycleSupabasePy:
    """Each lifecycle call of supabase-py, with the mail caught by a real SMTP server on
    loopback and its link or code followed."""

    async def test_sign_up_mails_a_link_that_the_browser_follows_to_a_session(
        self, mailing, clients
    ):
        with mailing() as (url, smtp):
            client, _ = await clients(url)
            email = unique_email()

            signed_up = await client.auth.sign_up({"email": email, "password": PASSWORD})
            refused = await api_error(
                client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
            )
            (mail,) = await received_mails(smtp, email)
            async with httpx.AsyncClient() as browser:
                opened = await browser.get(mail.link)
            values = _fragment(opened.headers["location"])
            restored = await client.auth.set_session(
                values["access_token"], values["refresh_token"]
            )
            user = await client.auth.get_user()

        assert signed_up.session is None
        assert signed_up.user is not None
        assert signed_up.user.email_confirmed_at is None
        assert (refused.status, str(refused.code)) == (400, "email_not_confirmed")
        assert mail.link.startswith(f"{url}/auth/v1/verify?")
        assert opened.status_code == 303
        assert restored.session is not None
        assert user is not None
        assert user.user.email_confirmed_at is not None

    async def test_verify_otp_with_the_token_hash_confirms(self, mailing, clients):
        with mailing() as (url, smtp):
            client, _ = await clients(url)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})
            (mail,) = await received_mails(smtp, email)

            verified = await client.auth.verify_otp({"type": "signup", "token_hash": mail.token})
            replayed = await api_error(
                client.auth.verify_otp({"type": "signup", "token_hash": mail.token})
            )

        assert verified.session is not None
        assert verified.user is not None
        assert verified.user.email == email
        assert (replayed.status, str(replayed.code)) == (403, "otp_expired")

    async def test_resend_mails_a_new_code_that_confirms(self, mailing, clients):
        with mailing() as (url, smtp):
            client, _ = await clients(url)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})
            await received_mails(smtp, email)

            await client.auth.resend({"type": "signup", "email": email})
            mail = (await received_mails(smtp, email, 2))[-1]
            verified = await client.auth.verify_otp(
                {"type": "email", "email": email, "token": mail.code}
            )

        assert verified.session is not None

    async def test_reset_password_for_email_then_verify_then_update_user(self, mailing, clients):
        with mailing(gotrue_mailer_autoconfirm=True) as (url, smtp):
            client, _ = await clients(url)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})

            await client.auth.reset_password_for_email(email, {"redirect_to": SPA_ORIGIN})
            await client.auth.reset_password_for_email(unique_email())
            (mail,) = await received_mails(smtp, email)
            verified = await client.auth.verify_otp({"type": "recovery", "token_hash": mail.token})
            await client.auth.update_user({"password": "a brand new passphrase"})
            fresh, _ = await clients(url)
            signed_in = await fresh.auth.sign_in_with_password(
                {"email": email, "password": "a brand new passphrase"}
            )

        assert mail.query["type"] == "recovery"
        assert mail.query["redirect_to"] == SPA_ORIGIN
        assert verified.session is not None
        assert signed_in.session is not None

    async def test_the_clients_typed_errors(self, mailing, clients):
        with mailing(gotrue_disable_signup=True, rate_limit_email_per_recipient="1/hour") as (
            url,
            _,
        ):
            client, _ = await clients(url)
            address = unique_email()
            await client.auth.reset_password_for_email(address)

            codes = {
                "signup_disabled": await outcome(
                    client.auth.sign_up({"email": unique_email(), "password": PASSWORD})
                ),
                "over_email_send_rate_limit": await outcome(
                    client.auth.reset_password_for_email(address)
                ),
                "otp_expired": await outcome(
                    client.auth.verify_otp({"type": "recovery", "token_hash": "x" * 43})
                ),
                "otp_expired_code": await outcome(
                    client.auth.verify_otp({"type": "email", "email": address, "token": "000000"})
                ),
                "validation_failed": await outcome(
                    client.auth.resend({"type": "signup", "email": "not-an-email"})
                ),
            }

        assert codes == {
            "signup_disabled": "signup_disabled",
            "over_email_send_rate_limit": "over_email_send_rate_limit",
            "otp_expired": "otp_expired",
            "otp_expired_code": "otp_expired",
            "validation_failed": "validation_failed",
        }


class TestDisabledFeaturesSupabasePy:
    async def test_each_disabled_feature_is_gotrues_typed_error(self, serve, clients):
        """What supabase-py raises against a Supabase project with these features off."""
        with serve() as url:
            client, _ = await clients(url)
            await client.auth.sign_up({"email": unique_email(), "password": PASSWORD})

            errors = {
                "sso": await api_error(client.auth.sign_in_with_sso({"domain": "example.com"})),
                "anonymous": await api_error(client.auth.sign_in_anonymously()),
                "phone": await api_error(
                    client.auth.sign_up({"phone": "+15550100", "password": PASSWORD})
                ),
                "id_token": await api_error(
                    client.auth.sign_in_with_id_token({"provider": "google", "token": "x"})
                ),
                "linking": await api_error(client.auth.link_identity({"provider": "github"})),
                "mfa": await api_error(
                    client.auth.mfa.enroll({"factor_type": "totp", "friendly_name": "phone"})
                ),
            }

        assert {name: (error.status, str(error.code)) for name, error in errors.items()} == {
            "sso": (404, "saml_provider_disabled"),
            "anonymous": (422, "anonymous_provider_disabled"),
            "phone": (400, "phone_provider_disabled"),
            "id_token": (400, "provider_disabled"),
            "linking": (404, "manual_linking_disabled"),
            "mfa": (422, "mfa_totp_enroll_not_enabled"),
        }
        assert errors["sso"].message == "SAML 2.0 is disabled"
        assert errors["linking"].message == "Manual linking is disabled"


class TestOtpAndReauthenticationSupabasePy:
    async def test_sign_in_with_otp_then_the_code(self, serve, clients, make_smtp_server):
        smtp = make_smtp_server()
        mail_settings = {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_tls": "none"}
        with serve(**mail_settings) as url:
            client, _ = await clients(url)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})

            sent = await client.auth.sign_in_with_otp({"email": email})
            (mail,) = await received_mails(smtp, email)
            verified = await client.auth.verify_otp(
                {"type": "email", "email": email, "token": mail.code}
            )
            refused = await outcome(
                client.auth.sign_in_with_otp(
                    {"email": unique_email(), "options": {"should_create_user": False}}
                )
            )

        assert sent.user is None
        assert sent.session is None
        assert verified.session is not None
        assert refused == "otp_disabled"

    async def test_reauthenticate_then_update_user_with_the_nonce(
        self, serve, clients, make_smtp_server, monkeypatch
    ):
        monkeypatch.setattr(gotrue_operations, "REAUTHENTICATION_WINDOW_SECONDS", -1)
        smtp = make_smtp_server()
        settings = {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_tls": "none",
            "gotrue_security_update_password_require_reauthentication": True,
        }
        with serve(**settings) as url:
            client, _ = await clients(url)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})

            needed = await outcome(client.auth.update_user({"password": "a brand new passphrase"}))
            await client.auth.reauthenticate()
            (mail,) = await received_mails(smtp, email)
            updated = await client.auth.update_user(
                {"password": "a brand new passphrase", "nonce": mail.code}
            )

        assert needed == "reauthentication_needed"
        assert updated.user is not None


class TestAdminUpdateSupabasePy:
    async def test_update_user_by_id(self, serve, clients):
        with serve() as url:
            admin_client, _ = await clients(url, SERVICE_ROLE_KEY)
            created = await admin_client.auth.admin.create_user(
                {"email": unique_email(), "password": PASSWORD}
            )
            new_email = unique_email()

            updated = await admin_client.auth.admin.update_user_by_id(
                created.user.id,
                {
                    "email": new_email,
                    "password": "a brand new passphrase",
                    "user_metadata": {"plan": "pro"},
                    "email_confirm": True,
                },
            )
            client, _ = await clients(url)
            signed_in = await client.auth.sign_in_with_password(
                {"email": new_email, "password": "a brand new passphrase"}
            )
            missing = await outcome(
                admin_client.auth.admin.update_user_by_id(
                    "00000000-0000-4000-8000-000000000000", {"user_metadata": {}}
                )
            )

        assert updated.user.email == new_email
        assert updated.user.user_metadata == {"plan": "pro"}
        assert updated.user.email_confirmed_at is not None
        assert signed_in.session is not None
        assert missing == "user_not_found"


class TestBanSupabasePy:
    async def test_ban_duration_through_update_user_by_id_then_lift_it(self, serve, clients):
        """supabase-py's admin API bans (`ban_duration`, GoTrue's `admin.go`); the banned user's
        sign-in and refresh are GoTrue's 400 `user_banned`; "none" lifts the ban."""
        with serve() as url:
            admin_client, _ = await clients(url, SERVICE_ROLE_KEY)
            client, _ = await clients(url)
            email = unique_email()
            created = await admin_client.auth.admin.create_user(
                {"email": email, "password": PASSWORD, "email_confirm": True}
            )
            first = await client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
            assert first.session is not None

            banned = await admin_client.auth.admin.update_user_by_id(
                created.user.id, {"ban_duration": "24h"}
            )
            sign_in = await api_error(
                client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
            )
            refresh = await api_error(client.auth.refresh_session(first.session.refresh_token))
            invalid = await api_error(
                admin_client.auth.admin.update_user_by_id(created.user.id, {"ban_duration": "24"})
            )
            lifted = await admin_client.auth.admin.update_user_by_id(
                created.user.id, {"ban_duration": "none"}
            )
            again = await client.auth.sign_in_with_password({"email": email, "password": PASSWORD})

        assert banned.user.banned_until is not None
        assert (sign_in.status, sign_in.code, sign_in.message) == (
            400,
            "user_banned",
            "User is banned",
        )
        assert (refresh.status, refresh.code) == (400, "user_banned")
        assert (invalid.status, invalid.code) == (400, "validation_failed")
        assert (
            invalid.message
            == 'invalid format for ban duration: time: missing unit in duration "24"'
        )
        assert lifted.user.banned_until is None
        assert again.session is not None


class TestSoftDeleteSupabasePy:
    async def test_delete_user_with_should_soft_delete(self, serve, clients):
        """supabase-py's `delete_user(id, should_soft_delete=True)`: the user stays, obfuscated
        and with `deleted_at`, and no longer signs in (GoTrue `adminUserDelete`)."""
        with serve() as url:
            admin_client, _ = await clients(url, SERVICE_ROLE_KEY)
            client, _ = await clients(url)
            email = unique_email()
            created = await admin_client.auth.admin.create_user(
                {"email": email, "password": PASSWORD, "email_confirm": True}
            )

            await admin_client.auth.admin.delete_user(created.user.id, should_soft_delete=True)
            kept = await admin_client.auth.admin.get_user_by_id(created.user.id)
            sign_in = await outcome(
                client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
            )

        assert kept.user.deleted_at is not None
        assert kept.user.email != email
        assert sign_in == "invalid_credentials"


class TestInviteAndGenerateLinkSupabasePy:
    async def test_invite_user_by_email_and_follow_its_link(self, serve, clients, make_smtp_server):
        smtp = make_smtp_server()
        with serve(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none") as url:
            admin_client, _ = await clients(url, SERVICE_ROLE_KEY)
            email = unique_email()

            invited = await admin_client.auth.admin.invite_user_by_email(
                email, {"data": {"team": "blue"}}
            )
            (mail,) = await received_mails(smtp, email)
            async with httpx.AsyncClient() as browser:
                opened = await browser.get(mail.link)
            values = _fragment(opened.headers["location"])
            again = await outcome(admin_client.auth.admin.invite_user_by_email(email))

        assert invited.user.email == email
        assert invited.user.invited_at is not None
        assert values["type"] == "invite"
        assert "access_token" in values
        assert again == "email_exists"

    @pytest.mark.parametrize("kind", ["recovery", "magiclink", "invite", "signup"])
    async def test_generate_link_then_verify_the_hashed_token(self, serve, clients, kind):
        with serve() as url:
            admin_client, _ = await clients(url, SERVICE_ROLE_KEY)
            client, _ = await clients(url)
            email = unique_email()
            if kind in ("recovery", "magiclink"):
                await client.auth.sign_up({"email": email, "password": PASSWORD})
            params: dict[str, Any] = {"type": kind, "email": email}
            if kind == "signup":
                params["password"] = PASSWORD

            generated = await admin_client.auth.admin.generate_link(params)
            properties = generated.properties
            verified = await client.auth.verify_otp(
                {"type": kind, "token_hash": properties.hashed_token}
            )

        assert properties.verification_type == kind
        assert properties.action_link.startswith(f"{url}/auth/v1/verify?")
        assert len(properties.email_otp) == 6
        assert generated.user.email == email
        assert verified.session is not None


class TestEmailChangeSupabasePy:
    async def test_update_user_email_then_resend_then_verify(
        self, serve, clients, make_smtp_server
    ):
        """The secure email change off: one link, to the new address (on: its own file)."""
        smtp = make_smtp_server()
        with serve(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_tls="none",
            gotrue_mailer_secure_email_change_enabled=False,
        ) as url:
            client, _ = await clients(url)
            old, new = unique_email(), unique_email()
            await client.auth.sign_up({"email": old, "password": PASSWORD})

            asked = await client.auth.update_user({"email": new})
            await received_mails(smtp, new)
            await client.auth.resend({"type": "email_change", "email": old})
            mail = (await received_mails(smtp, new, 2))[-1]
            verified = await client.auth.verify_otp(
                {"type": "email_change", "token_hash": mail.token}
            )

        assert asked.user.new_email == new
        assert asked.user.email == old
        assert verified.user is not None
        assert verified.user.email == new


async def _code_of(link: str) -> tuple[httpx.Response, dict[str, str]]:
    """A browser following a mail's link, without following the redirect: the 303 and the
    redirect's query."""
    async with httpx.AsyncClient() as browser:
        opened = await browser.get(link)
    query = parse_qs(urlsplit(opened.headers["location"]).query)
    return opened, {key: found[0] for key, found in query.items()}


class TestPkceSupabasePy:
    """supabase-py with its default flow (PKCE): a link's redirect carries `?code=`, which
    `exchange_code_for_session` turns into a session with the verifier the client kept."""

    async def test_sign_up_link_gives_a_code_the_client_exchanges_for_a_session(
        self, mailing, clients
    ):
        with mailing() as (url, smtp):
            client, paths = await clients(url, pkce=True)
            email = unique_email()

            signed_up = await client.auth.sign_up(
                {"email": email, "password": PASSWORD, "options": {"email_redirect_to": SPA_ORIGIN}}
            )
            (mail,) = await received_mails(smtp, email)
            opened, query = await _code_of(mail.link)
            exchanged = await client.auth.exchange_code_for_session({"auth_code": query["code"]})
            user = await client.auth.get_user()

        assert signed_up.session is None
        assert mail.token.startswith("pkce_")
        assert opened.status_code == 303
        assert opened.headers["location"].startswith(f"{SPA_ORIGIN}?code=")
        assert "access_token" not in opened.headers["location"]
        assert exchanged.session is not None
        assert exchanged.user is not None
        assert exchanged.user.email == email
        assert user is not None
        assert user.user.email_confirmed_at is not None
        assert "POST /auth/v1/token" in paths

    async def test_reset_password_link_code_exchange_then_update_user(self, mailing, clients):
        with mailing(gotrue_mailer_autoconfirm=True) as (url, smtp):
            client, _ = await clients(url, pkce=True)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})
            events: list[str] = []
            client.auth.on_auth_state_change(lambda event, _session: events.append(event))

            await client.auth.reset_password_for_email(email, {"redirect_to": SPA_ORIGIN})
            (mail,) = await received_mails(smtp, email)
            _, query = await _code_of(mail.link)
            exchanged = await client.auth.exchange_code_for_session({"auth_code": query["code"]})
            await client.auth.update_user({"password": "a brand new passphrase"})
            fresh, _ = await clients(url)
            signed_in = await fresh.auth.sign_in_with_password(
                {"email": email, "password": "a brand new passphrase"}
            )

        assert mail.query["type"] == "recovery"
        assert mail.token.startswith("pkce_")
        assert exchanged.session is not None
        assert "PASSWORD_RECOVERY" in events
        assert signed_in.session is not None

    async def test_sign_in_with_otp_magic_link_code_exchange(self, mailing, clients):
        with mailing(gotrue_mailer_autoconfirm=True) as (url, smtp):
            client, _ = await clients(url, pkce=True)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})
            await client.auth.sign_out()

            await client.auth.sign_in_with_otp({"email": email})
            (mail,) = await received_mails(smtp, email)
            _, query = await _code_of(mail.link)
            exchanged = await client.auth.exchange_code_for_session({"auth_code": query["code"]})
            replayed = await outcome(
                client.auth.exchange_code_for_session(
                    {"auth_code": query["code"], "code_verifier": "x" * 43}
                )
            )

        assert mail.query["type"] == "magiclink"
        assert exchanged.session is not None
        assert exchanged.user is not None
        assert exchanged.user.email == email
        assert replayed == "flow_state_not_found"

    async def test_update_user_email_link_code_exchange_applies_the_change(self, mailing, clients):
        with mailing(gotrue_mailer_autoconfirm=True) as (url, smtp):
            client, _ = await clients(url, pkce=True)
            old, new = unique_email(), unique_email()
            await client.auth.sign_up({"email": old, "password": PASSWORD})

            await client.auth.update_user({"email": new})
            (mail,) = await received_mails(smtp, new)
            _, query = await _code_of(mail.link)
            exchanged = await client.auth.exchange_code_for_session({"auth_code": query["code"]})

        assert mail.token.startswith("pkce_")
        assert exchanged.user is not None
        assert exchanged.user.email == new

    async def test_a_wrong_verifier_is_bad_code_verifier_and_the_code_still_works(
        self, mailing, clients
    ):
        with mailing() as (url, smtp):
            client, _ = await clients(url, pkce=True)
            email = unique_email()
            await client.auth.sign_up({"email": email, "password": PASSWORD})
            (mail,) = await received_mails(smtp, email)
            _, query = await _code_of(mail.link)

            refused = await api_error(
                client.auth.exchange_code_for_session(
                    {"auth_code": query["code"], "code_verifier": "y" * 64}
                )
            )
            exchanged = await client.auth.exchange_code_for_session({"auth_code": query["code"]})

        assert (refused.status, str(refused.code)) == (400, "bad_code_verifier")
        assert exchanged.session is not None
