"""GoTrue's lifecycle under /auth/v1 (`/recover`, `/verify`, `/resend`, sign-up with
confirmation) and its switches, on SQLite and PostgreSQL. The clients' own runs are in
test_supabase_py.py and test_supabase_js.py; this file attacks each input."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from backend.app.core.logging import redact
from backend.app.core.settings import Settings
from backend.app.db.tables import identity_account_tokens
from backend.app.doctor import Status, check_password_settings
from backend.app.identity.embedded import gotrue as gotrue_operations
from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.gotrue.mails import count_outbox, outbox_mails
from backend.tests.helpers import PASSWORD, unique_email

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "data" / "outbox"


@pytest.fixture
async def confirming(make_gotrue) -> GoTrue:
    """GoTrue's API with GOTRUE_MAILER_AUTOCONFIRM=false."""
    driver: GoTrue = await make_gotrue(gotrue_mailer_autoconfirm=False)
    return driver


def fragment(location: str) -> dict[str, str]:
    values = parse_qs(urlsplit(location).fragment, keep_blank_values=True)
    return {key: found[0] for key, found in values.items()}


async def follow(gotrue: GoTrue, link: str):
    """A browser opening a mail's link: GET /verify, no apikey."""
    parts = urlsplit(link)
    return await gotrue.call(
        "GET", f"{parts.path.removeprefix('/auth/v1')}?{parts.query}", key=None
    )


async def recovery_mail(gotrue: GoTrue, outbox: Path, email: str, count: int = 1):
    response = await gotrue.call("POST", "/recover", json={"email": email})
    assert (response.status_code, response.json()) == (200, {}), response.text
    return (await outbox_mails(outbox, email, count))[-1]


class TestSettings:
    def test_autoconfirm_is_the_inverse_of_confirmation_required(self):
        """GOTRUE_MAILER_AUTOCONFIRM=false is EMAIL_CONFIRMATION_REQUIRED=true: one switch."""
        off = Settings(_env_file=None, gotrue_mailer_autoconfirm=False)
        on = Settings(_env_file=None, gotrue_mailer_autoconfirm=True)

        assert off.email_confirmation_required is True
        assert on.email_confirmation_required is False
        assert Settings(_env_file=None).email_confirmation_required is False

    def test_both_names_disagreeing_is_refused(self):
        with pytest.raises(ValidationError, match="disagree"):
            Settings(
                _env_file=None, gotrue_mailer_autoconfirm=True, email_confirmation_required=True
            )

    def test_gotrue_password_min_length_name_is_read_from_the_environment(self, monkeypatch):
        monkeypatch.setenv("GOTRUE_PASSWORD_MIN_LENGTH", "6")

        assert Settings(_env_file=None).password_min_length == 6

    def test_password_minimum_defaults_to_8_and_never_goes_below_gotrues_6(self):
        assert Settings(_env_file=None).password_min_length == 8
        with pytest.raises(ValidationError):
            Settings(_env_file=None, password_min_length=5)

    def test_a_lower_minimum_is_refused_in_production(self):
        with pytest.raises(ValidationError, match="development only"):
            Settings(
                _env_file=None,
                environment="production",
                jwt_private_key="k" * 40,
                secret_key="s" * 40,
                password_min_length=6,
            )

    def test_the_doctor_warns_about_a_lower_minimum(self):
        (lower,) = check_password_settings(Settings(_env_file=None, password_min_length=6))
        (default,) = check_password_settings(Settings(_env_file=None))

        assert lower.status is Status.WARN
        assert "PASSWORD_MIN_LENGTH=6" in lower.message
        assert default.status is Status.OK

    async def test_settings_route_reports_the_switches(self, make_gotrue):
        gotrue = await make_gotrue(gotrue_mailer_autoconfirm=False, gotrue_disable_signup=True)

        body = (await gotrue.call("GET", "/settings")).json()

        assert (body["mailer_autoconfirm"], body["disable_signup"]) == (False, True)


class TestSignUpWithConfirmation:
    async def test_sign_up_answers_the_bare_user_and_mails_a_verify_link(self, confirming, outbox):
        """No session, `confirmation_sent_at`, and GoTrue's ConfirmationURL in the mail."""
        email = unique_email()

        response = await confirming.signup(email)
        (mail,) = await outbox_mails(outbox, email)

        body = response.json()
        assert response.status_code == 200
        assert "access_token" not in body
        assert body["email"] == email
        assert "confirmation_sent_at" in body
        assert "email_confirmed_at" not in body
        assert mail.link.startswith("http://localhost:8000/auth/v1/verify?")
        assert mail.query["type"] == "signup"
        assert mail.query["redirect_to"] == SPA_ORIGIN
        assert len(mail.code) == 6

    async def test_sign_in_before_confirming_is_email_not_confirmed(self, confirming, outbox):
        email = unique_email()
        await confirming.signup(email)

        response = await confirming.sign_in(email)

        assert (response.status_code, response.json()["code"]) == (400, "email_not_confirmed")

    async def test_following_the_link_redirects_with_a_session_then_sign_in_works(
        self, confirming, outbox
    ):
        email = unique_email()
        await confirming.signup(email)
        (mail,) = await outbox_mails(outbox, email)

        response = await follow(confirming, mail.link)
        values = fragment(response.headers["location"])
        user = await confirming.call("GET", "/user", bearer=values["access_token"])

        assert response.status_code == 303
        assert response.headers["location"].startswith(f"{SPA_ORIGIN}#")
        assert values["token_type"] == "bearer"
        assert values["type"] == "signup"
        assert "sb" in values
        assert int(values["expires_in"]) > 0
        assert user.json()["email_confirmed_at"]
        assert (await confirming.sign_in(email)).status_code == 200

    async def test_a_followed_link_is_spent(self, confirming, outbox):
        """The second use redirects with GoTrue's error in the fragment."""
        email = unique_email()
        await confirming.signup(email)
        (mail,) = await outbox_mails(outbox, email)
        await follow(confirming, mail.link)

        again = await follow(confirming, mail.link)

        assert again.status_code == 303
        assert fragment(again.headers["location"]) == {
            "error": "access_denied",
            "error_code": "otp_expired",
            "error_description": "Email link is invalid or has expired",
            "sb": "",
        }

    async def test_a_repeated_sign_up_gets_a_stand_in_user_and_no_session(self, confirming, outbox):
        """The same status and shape for a taken address (GoTrue's `sanitizeUser`): a random
        id, no identities; the unconfirmed owner gets a new link."""
        email = unique_email()
        first = (await confirming.signup(email)).json()

        again = await confirming.signup(email)

        body = again.json()
        assert again.status_code == 200
        assert body["id"] != first["id"]
        assert body["identities"] == []
        assert set(body) <= set(first)
        assert len(await outbox_mails(outbox, email, 2)) == 2

    async def test_the_code_confirms_the_sign_up(self, confirming, outbox):
        email = unique_email()
        await confirming.signup(email)
        (mail,) = await outbox_mails(outbox, email)

        response = await confirming.call(
            "POST", "/verify", json={"type": "signup", "email": email, "token": mail.code}
        )

        assert response.status_code == 200
        assert response.json()["user"]["email_confirmed_at"]

    async def test_tokens_are_stored_only_as_sha256(self, make_gotrue, confirming, outbox):
        email = unique_email()
        await confirming.signup(email)
        (mail,) = await outbox_mails(outbox, email)

        def hashes(conn: sa.Connection) -> set[str]:
            return set(conn.execute(sa.select(identity_account_tokens.c.token_hash)).scalars())

        stored = await confirming.app.state.services.database.read(hashes)

        assert hashlib.sha256(mail.token.encode()).hexdigest() in stored
        assert mail.token not in stored
        assert mail.code not in stored


class TestSignUpDisabled:
    async def test_sign_up_is_refused_with_gotrues_code(self, make_gotrue):
        gotrue = await make_gotrue(gotrue_disable_signup=True)

        response = await gotrue.signup(unique_email())
        garbage = await gotrue.call("POST", "/signup", content=b"{not json")

        assert response.status_code == 422
        assert response.json() == {
            "code": "signup_disabled",
            "message": "Signups not allowed for this instance",
        }
        assert garbage.json()["code"] == "bad_json"  # GoTrue parses the body first

    async def test_the_admin_still_creates_users(self, make_gotrue):
        gotrue = await make_gotrue(gotrue_disable_signup=True)

        response = await gotrue.admin("POST", "/users", json={"email": unique_email()})

        assert response.status_code == 200


class TestPasswordMinimum:
    async def test_a_lowered_minimum_accepts_six_characters(self, make_gotrue):
        gotrue = await make_gotrue(password_min_length=6)

        ok = await gotrue.signup(unique_email(), password="x7#kQ2")
        short = await gotrue.signup(unique_email(), password="x7#kQ")

        assert ok.status_code == 200
        assert short.status_code == 422
        assert short.json()["message"] == "Password should be at least 6 characters."

    async def test_the_default_minimum_is_8(self, gotrue):
        response = await gotrue.signup(unique_email(), password="x7#kQ2a")

        assert response.json()["message"] == "Password should be at least 8 characters."


class TestRecover:
    async def test_known_and_unknown_addresses_get_the_same_answer(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]
        unknown = unique_email()

        known = await gotrue.call("POST", "/recover", json={"email": email})
        stranger = await gotrue.call("POST", "/recover", json={"email": unknown})
        await outbox_mails(outbox, email)
        await asyncio.sleep(0.2)

        assert (known.status_code, known.content) == (200, b"{}")
        assert (stranger.status_code, stranger.content) == (200, b"{}")
        assert count_outbox(outbox, unknown) == 0

    async def test_the_link_signs_in_once_and_the_password_can_then_change(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]
        mail = await recovery_mail(gotrue, outbox, email)

        verified = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": mail.token}
        )
        token = verified.json()["access_token"]
        changed = await gotrue.call("PUT", "/user", bearer=token, json={"password": NEW_PASSWORD})
        replay = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": mail.token}
        )

        assert mail.query["type"] == "recovery"
        assert verified.status_code == 200
        assert changed.status_code == 200
        assert (await gotrue.sign_in(email, NEW_PASSWORD)).status_code == 200
        assert (replay.status_code, replay.json()) == (
            403,
            {"code": "otp_expired", "message": "Email link is invalid or has expired"},
        )

    async def test_a_recovery_token_is_not_a_signup_token(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]
        mail = await recovery_mail(gotrue, outbox, email)

        wrong = await gotrue.call(
            "POST", "/verify", json={"type": "signup", "token_hash": mail.token}
        )
        right = await gotrue.call(
            "POST", "/verify", json={"type": "magiclink", "token_hash": mail.token}
        )

        assert (wrong.status_code, wrong.json()["code"]) == (403, "otp_expired")
        assert right.status_code == 200  # recovery and magic link share one token, as GoTrue

    async def test_a_newer_mail_spends_the_older_link_and_code(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]
        old = await recovery_mail(gotrue, outbox, email)
        await recovery_mail(gotrue, outbox, email, 2)

        link = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": old.token}
        )
        code = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "email": email, "token": old.code}
        )

        assert (link.status_code, code.status_code) == (403, 403)
        assert code.json() == {"code": "otp_expired", "message": "Token has expired or is invalid"}

    async def test_using_the_code_spends_the_link(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]
        mail = await recovery_mail(gotrue, outbox, email)

        code = await gotrue.call(
            "POST", "/verify", json={"type": "email", "email": email, "token": mail.code}
        )
        link = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": mail.token}
        )

        assert (code.status_code, link.status_code) == (200, 403)

    async def test_the_mail_limit_is_gotrues_429_for_known_and_unknown_alike(self, make_gotrue):
        gotrue = await make_gotrue(rate_limit_email_per_recipient="2/hour")
        email = (await gotrue.session())["user"]["email"]
        answers = {}
        for address in (email, unique_email()):
            for _ in range(2):
                await gotrue.call("POST", "/recover", json={"email": address})
            answers[address == email] = await gotrue.call(
                "POST", "/recover", json={"email": address}
            )

        for refused in answers.values():
            assert refused.status_code == 429
            assert refused.json() == {
                "code": "over_email_send_rate_limit",
                "message": "email rate limit exceeded",
            }
            assert int(refused.headers["retry-after"]) > 0

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({}, "Password recovery requires an email"),
            ({"email": ""}, "Password recovery requires an email"),
            ({"email": "not-an-address"}, "Unable to validate email address: invalid format"),
            ({"email": ["a@example.com"]}, "Invalid value for: email"),
            ({"email": "a" * 300 + "@example.com"}, "An email address is too long"),
        ],
    )
    async def test_bad_bodies_are_validation_failed(self, gotrue, body, message):
        response = await gotrue.call("POST", "/recover", json=body)

        assert (response.status_code, response.json()) == (
            400,
            {"code": "validation_failed", "message": message},
        )

    @pytest.mark.parametrize("raw", [b"{", b"[]", b'{"email": NaN}', b'"x"'])
    async def test_bad_json_is_bad_json(self, gotrue, raw):
        response = await gotrue.call(
            "POST", "/recover", content=raw, headers={"Content-Type": "application/json"}
        )

        assert (response.status_code, response.json()["code"]) == (400, "bad_json")

    async def test_no_apikey_is_the_gateways_refusal(self, gotrue):
        response = await gotrue.call("POST", "/recover", key=None, json={"email": "a@b.co"})

        assert response.status_code == 401


class TestVerify:
    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            ({"token_hash": "x"}, 400, "Verify requires a verification type"),
            ({"type": "signup"}, 400, "Verify requires either a token or a token hash"),
            (
                {"type": "signup", "token": "1", "token_hash": "x"},
                400,
                "Verify requires either a token or a token hash",
            ),
            (
                {"type": "signup", "token_hash": "x", "email": "a@example.com"},
                400,
                "Only the token_hash and type should be provided",
            ),
            (
                {"type": "signup", "token_hash": "x", "redirect_to": "https://evil.example"},
                400,
                "Only the token_hash and type should be provided",
            ),
            ({"type": "sms", "token_hash": "x"}, 400, "Invalid email verification type"),
            (
                {"type": "signup", "token": "123456"},
                400,
                "Only an email address or phone number should be provided on verify",
            ),
            (
                {"type": "signup", "token": "123456", "email": "nope"},
                422,
                "Invalid email format",
            ),
        ],
    )
    async def test_malformed_requests_are_gotrues_validation_failed(
        self, gotrue, body, status, message
    ):
        response = await gotrue.call("POST", "/verify", json=body)

        assert (response.status_code, response.json()) == (
            status,
            {"code": "validation_failed", "message": message},
        )

    @pytest.mark.parametrize("kind", ["signup", "recovery", "magiclink", "invite", "email"])
    async def test_an_unknown_token_hash_is_otp_expired(self, gotrue, kind):
        response = await gotrue.call("POST", "/verify", json={"type": kind, "token_hash": "x" * 43})

        assert (response.status_code, response.json()["code"]) == (403, "otp_expired")

    async def test_a_code_for_an_unknown_address_is_otp_expired(self, gotrue):
        response = await gotrue.call(
            "POST",
            "/verify",
            json={"type": "email", "email": unique_email(), "token": "123456"},
        )

        assert response.json() == {
            "code": "otp_expired",
            "message": "Token has expired or is invalid",
        }

    async def test_a_phone_code_is_otp_expired(self, gotrue):
        response = await gotrue.call(
            "POST", "/verify", json={"type": "sms", "phone": "+15550000000", "token": "123456"}
        )

        assert (response.status_code, response.json()["code"]) == (403, "otp_expired")

    async def test_guessing_codes_hits_the_sign_in_limit(self, make_gotrue, outbox):
        """A 6-digit code is a credential: the account's sign-in limit stops the guesses."""
        gotrue = await make_gotrue(rate_limit_signin_per_account="3/minute")
        email = unique_email()
        await gotrue.admin("POST", "/users", json={"email": email})
        statuses = []
        for guess in range(4):
            response = await gotrue.call(
                "POST",
                "/verify",
                json={"type": "email", "email": email, "token": f"{guess:06d}"},
            )
            statuses.append(response.status_code)

        assert statuses == [403, 403, 403, 429]

    @pytest.mark.parametrize("value", [None, 1, [], {}, True])
    async def test_wrong_types_are_validation_failed(self, gotrue, value):
        response = await gotrue.call(
            "POST", "/verify", json={"type": "signup", "token_hash": value or 1}
        )

        assert (response.status_code, response.json()["code"]) == (400, "validation_failed")

    async def test_get_without_a_token_or_type_is_a_json_error(self, gotrue):
        no_type = await gotrue.call("GET", "/verify?token=x", key=None)
        no_token = await gotrue.call("GET", "/verify?type=signup", key=None)

        assert (no_type.status_code, no_type.json()["message"]) == (
            400,
            "Verify requires a verification type",
        )
        assert no_token.json()["message"] == "Verify requires a token or a token hash"

    @pytest.mark.parametrize(
        ("redirect_to", "expected"),
        [
            (f"{SPA_ORIGIN}/welcome?x=1", f"{SPA_ORIGIN}/welcome?x=1"),
            ("https://evil.example/steal", SPA_ORIGIN),
            ("javascript:alert(1)", SPA_ORIGIN),
            ("//evil.example", SPA_ORIGIN),
            (f"{SPA_ORIGIN}@evil.example", SPA_ORIGIN),
        ],
    )
    async def test_get_redirects_only_to_allowed_urls(self, gotrue, redirect_to, expected):
        response = await gotrue.call(
            "GET",
            "/verify",
            key=None,
            params={"token": "x" * 43, "type": "signup", "redirect_to": redirect_to},
        )

        assert response.status_code == 303
        assert response.headers["location"].split("#")[0] == expected

    async def test_get_with_an_unknown_type_redirects_with_invalid_request(self, gotrue):
        response = await gotrue.call("GET", "/verify?token=x&type=sms", key=None)

        assert fragment(response.headers["location"]) == {
            "error": "invalid_request",
            "error_code": "validation_failed",
            "error_description": "Invalid email verification type",
            "sb": "",
        }

    def test_a_verify_links_query_is_redacted_from_log_lines(self):
        line = 'GET /auth/v1/verify?token=SECRETVALUE&type=signup HTTP/1.1" 303'

        assert "SECRETVALUE" not in redact(line)
        assert "SECRETVALUE" not in redact('{"token_hash": "SECRETVALUE"}')


class TestResend:
    async def test_an_unconfirmed_sign_up_gets_a_new_link_and_the_old_one_dies(
        self, confirming, outbox
    ):
        email = unique_email()
        await confirming.signup(email)
        (old,) = await outbox_mails(outbox, email)

        response = await confirming.call("POST", "/resend", json={"type": "signup", "email": email})
        new = (await outbox_mails(outbox, email, 2))[-1]

        assert (response.status_code, response.json()) == (200, {})
        assert fragment((await follow(confirming, old.link)).headers["location"])["error_code"] == (
            "otp_expired"
        )
        assert "access_token" in fragment((await follow(confirming, new.link)).headers["location"])

    async def test_confirmed_and_unknown_addresses_get_the_same_answer_and_no_mail(
        self, gotrue, outbox
    ):
        email = (await gotrue.session())["user"]["email"]
        unknown = unique_email()

        confirmed = await gotrue.call("POST", "/resend", json={"type": "signup", "email": email})
        stranger = await gotrue.call("POST", "/resend", json={"type": "signup", "email": unknown})
        await asyncio.sleep(0.2)

        assert (confirmed.status_code, confirmed.content) == (200, b"{}")
        assert (stranger.status_code, stranger.content) == (200, b"{}")
        assert count_outbox(outbox, email) + count_outbox(outbox, unknown) == 0

    @pytest.mark.parametrize(
        ("body", "status", "code", "message"),
        [
            (
                {"email": "a@example.com"},
                400,
                "validation_failed",
                "Missing one of these types: signup, email_change, sms, phone_change",
            ),
            (
                {"type": "signup"},
                400,
                "validation_failed",
                "Type provided requires an email address",
            ),
            ({"type": "sms"}, 400, "validation_failed", "Type provided requires a phone number"),
            (
                {"type": "sms", "phone": "+15550000000"},
                400,
                "phone_provider_disabled",
                "Phone logins are disabled",
            ),
            (
                {"type": "signup", "email": "a@example.com", "phone": "+15550000000"},
                400,
                "validation_failed",
                "Only an email address or phone number should be provided.",
            ),
        ],
    )
    async def test_bad_requests_are_gotrues(self, gotrue, body, status, code, message):
        response = await gotrue.call("POST", "/resend", json=body)

        assert (response.status_code, response.json()) == (
            status,
            {"code": code, "message": message},
        )


class TestOtp:
    async def test_a_confirmed_user_gets_a_magic_link_that_signs_in(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]

        response = await gotrue.call("POST", "/otp", json={"email": email})
        (mail,) = await outbox_mails(outbox, email)
        opened = await follow(gotrue, mail.link)

        assert (response.status_code, response.json()) == (200, {})
        assert mail.query["type"] == "magiclink"
        assert fragment(opened.headers["location"])["type"] == "magiclink"
        assert "access_token" in fragment(opened.headers["location"])

    async def test_the_six_digit_code_signs_in_once(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]
        await gotrue.call("POST", "/otp", json={"email": email})
        (mail,) = await outbox_mails(outbox, email)
        body = {"type": "email", "email": email, "token": mail.code}

        first = await gotrue.call("POST", "/verify", json=body)
        again = await gotrue.call("POST", "/verify", json=body)

        assert first.status_code == 200
        assert first.json()["user"]["email"] == email
        assert (again.status_code, again.json()["code"]) == (403, "otp_expired")

    async def test_a_new_address_is_signed_up_and_mailed(self, gotrue, outbox):
        """Autoconfirm on: the new user gets a magic link at once (GoTrue `magic_link.go`)."""
        email = unique_email()

        response = await gotrue.call(
            "POST", "/otp", json={"email": email, "data": {"plan": "free"}}
        )
        (mail,) = await outbox_mails(outbox, email)
        verified = await gotrue.call(
            "POST", "/verify", json={"type": "magiclink", "token_hash": mail.token}
        )

        assert response.status_code == 200
        assert verified.json()["user"]["user_metadata"] == {"plan": "free"}

    async def test_with_confirmation_a_new_address_gets_the_confirmation(self, confirming, outbox):
        email = unique_email()

        await confirming.call("POST", "/otp", json={"email": email})
        (mail,) = await outbox_mails(outbox, email)

        assert mail.query["type"] == "signup"

    async def test_create_user_false_for_an_unknown_address_is_otp_disabled(self, gotrue, outbox):
        email = unique_email()

        response = await gotrue.call("POST", "/otp", json={"email": email, "create_user": False})

        assert (response.status_code, response.json()) == (
            422,
            {"code": "otp_disabled", "message": "Signups not allowed for otp"},
        )
        assert (await gotrue.sign_in(email)).json()["code"] == "invalid_credentials"

    async def test_sign_up_disabled_is_signup_disabled_for_a_new_address(self, make_gotrue):
        gotrue = await make_gotrue(gotrue_disable_signup=True)

        response = await gotrue.call("POST", "/otp", json={"email": unique_email()})

        assert (response.status_code, response.json()["code"]) == (422, "signup_disabled")

    async def test_it_counts_toward_the_mail_limit(self, make_gotrue):
        gotrue = await make_gotrue(rate_limit_email_per_recipient="1/hour")
        email = unique_email()
        await gotrue.call("POST", "/otp", json={"email": email, "create_user": False})

        response = await gotrue.call("POST", "/otp", json={"email": email, "create_user": False})

        assert (response.status_code, response.json()["code"]) == (
            429,
            "over_email_send_rate_limit",
        )

    @pytest.mark.parametrize(
        ("body", "code", "message"),
        [
            ({}, "validation_failed", "One of email or phone must be set"),
            (
                {"email": "a@example.com", "phone": "+15550100"},
                "validation_failed",
                "Only an email address or phone number should be provided",
            ),
            (
                {"email": "a@example.com", "channel": "sms"},
                "validation_failed",
                "Channel should only be specified with Phone OTP",
            ),
            ({"phone": "+15550100"}, "phone_provider_disabled", "Unsupported phone provider"),
            (
                {"email": "nope"},
                "validation_failed",
                "Unable to validate email address: invalid format",
            ),
            (
                {"email": "a@example.com", "create_user": "yes"},
                "validation_failed",
                "Invalid value for: create_user",
            ),
        ],
    )
    async def test_bad_requests_are_gotrues(self, gotrue, body, code, message):
        response = await gotrue.call("POST", "/otp", json=body)

        assert (response.status_code, response.json()) == (400, {"code": code, "message": message})


class TestReauthentication:
    @pytest.fixture
    async def strict(self, make_gotrue, monkeypatch) -> GoTrue:
        """The switch on, and every session "over a day old" (GoTrue's window, shrunk)."""
        monkeypatch.setattr(gotrue_operations, "REAUTHENTICATION_WINDOW_SECONDS", -1)
        driver: GoTrue = await make_gotrue(
            gotrue_security_update_password_require_reauthentication=True
        )
        return driver

    async def test_a_new_password_needs_the_mailed_nonce(self, strict, outbox):
        session = await strict.session()
        token, email = session["access_token"], session["user"]["email"]

        without = await strict.call("PUT", "/user", bearer=token, json={"password": NEW_PASSWORD})
        asked = await strict.call("GET", "/reauthenticate", bearer=token)
        (mail,) = await outbox_mails(outbox, email)
        wrong = await strict.call(
            "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD, "nonce": "000000"}
        )
        right = await strict.call(
            "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD, "nonce": mail.code}
        )
        replay = await strict.call(
            "PUT", "/user", bearer=token, json={"password": PASSWORD, "nonce": mail.code}
        )

        assert (without.status_code, without.json()) == (
            400,
            {
                "code": "reauthentication_needed",
                "message": "Password update requires reauthentication",
            },
        )
        assert (asked.status_code, asked.json()) == (200, {})
        assert (wrong.status_code, wrong.json()) == (
            422,
            {"code": "reauthentication_not_valid", "message": "Nonce has expired or is invalid"},
        )
        assert right.status_code == 200
        assert replay.json()["code"] == "reauthentication_not_valid"

    async def test_metadata_needs_no_nonce(self, strict):
        token = (await strict.session())["access_token"]

        response = await strict.call("PUT", "/user", bearer=token, json={"data": {"a": 1}})

        assert response.status_code == 200

    async def test_a_fresh_session_needs_no_nonce(self, make_gotrue):
        """GoTrue asks only when the session is over a day old."""
        gotrue = await make_gotrue(gotrue_security_update_password_require_reauthentication=True)
        token = (await gotrue.session())["access_token"]

        response = await gotrue.call("PUT", "/user", bearer=token, json={"password": NEW_PASSWORD})

        assert response.status_code == 200

    async def test_off_by_default(self, gotrue, monkeypatch):
        monkeypatch.setattr(gotrue_operations, "REAUTHENTICATION_WINDOW_SECONDS", -1)
        token = (await gotrue.session())["access_token"]

        response = await gotrue.call("PUT", "/user", bearer=token, json={"password": NEW_PASSWORD})

        assert response.status_code == 200

    async def test_reauthenticate_needs_a_session_and_a_confirmed_address(self, gotrue):
        email = unique_email()
        await gotrue.admin("POST", "/users", json={"email": email, "password": PASSWORD})
        unconfirmed = await gotrue.call(
            "POST", "/token?grant_type=password", json={"email": email, "password": PASSWORD}
        )

        anonymous = await gotrue.call("GET", "/reauthenticate")

        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "no_authorization")
        assert unconfirmed.json()["code"] == "email_not_confirmed"  # no session to ask with


class TestEmailChange:
    """GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED=false: one link, to the new address, and one
    verify (the switch on is test_secure_email_change.py)."""

    @pytest.fixture
    async def gotrue(self, make_gotrue) -> GoTrue:
        driver: GoTrue = await make_gotrue(gotrue_mailer_secure_email_change_enabled=False)
        return driver

    async def test_the_link_to_the_new_address_applies_it_and_the_old_one_is_told(
        self, gotrue, outbox
    ):
        session = await gotrue.session()
        old, new = session["user"]["email"], unique_email()

        await gotrue.call("PUT", "/user", bearer=session["access_token"], json={"email": new})
        (link,) = await outbox_mails(outbox, new)
        (notice,) = await outbox_mails(outbox, old)
        opened = await follow(gotrue, link.link)
        values = fragment(opened.headers["location"])
        user = await gotrue.call("GET", "/user", bearer=values["access_token"])

        assert link.query["type"] == "email_change"
        assert "verify?" not in notice.text
        assert values["type"] == "email_change"
        assert user.json()["email"] == new
        assert (await gotrue.sign_in(new)).status_code == 200

    async def test_the_code_with_the_new_address_applies_it(self, gotrue, outbox):
        session = await gotrue.session()
        new = unique_email()
        await gotrue.call("PUT", "/user", bearer=session["access_token"], json={"email": new})
        (mail,) = await outbox_mails(outbox, new)

        response = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "email": new, "token": mail.code}
        )

        assert response.json()["user"]["email"] == new

    async def test_a_taken_address_is_email_exists(self, gotrue):
        taken = (await gotrue.session())["user"]["email"]
        session = await gotrue.session()

        response = await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"email": taken.upper()}
        )

        assert (response.status_code, response.json()["code"]) == (422, "email_exists")

    async def test_resend_email_change_sends_a_new_link_for_the_pending_change(
        self, gotrue, outbox
    ):
        session = await gotrue.session()
        old, new = session["user"]["email"], unique_email()
        await gotrue.call("PUT", "/user", bearer=session["access_token"], json={"email": new})
        (first,) = await outbox_mails(outbox, new)

        response = await gotrue.call("POST", "/resend", json={"type": "email_change", "email": old})
        second = (await outbox_mails(outbox, new, 2))[-1]
        stale = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "token_hash": first.token}
        )

        assert (response.status_code, response.json()) == (200, {})
        assert stale.status_code == 403
        assert (
            await gotrue.call(
                "POST", "/verify", json={"type": "email_change", "token_hash": second.token}
            )
        ).status_code == 200

    async def test_resend_with_nothing_pending_sends_nothing(self, gotrue, outbox):
        email = (await gotrue.session())["user"]["email"]

        response = await gotrue.call(
            "POST", "/resend", json={"type": "email_change", "email": email}
        )
        await asyncio.sleep(0.2)

        assert (response.status_code, response.json()) == (200, {})
        assert count_outbox(outbox, email) == 0
