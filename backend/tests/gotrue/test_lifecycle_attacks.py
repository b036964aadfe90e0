"""Attacks on GoTrue's lifecycle under /auth/v1, on SQLite and PostgreSQL: a link, code or
nonce used where, when or by whom it must not work; a request refused after it changed
something; guesses with no limit. Each class names the bug it pins down (CHANGELOG, Security)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from backend.app.identity import passwords
from backend.app.identity.embedded import gotrue as gotrue_operations
from backend.app.identity.embedded import provider as provider_module
from backend.tests.api.test_errors import app_behind_cuttable_proxy
from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.gotrue.mails import outbox_mails
from backend.tests.gotrue.test_lifecycle import follow, fragment, recovery_mail
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, unique_email

NEW_PASSWORD = "a brand new passphrase 42"
OTHER_PASSWORD = "yet another passphrase 17"


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "data" / "outbox"


def code(response) -> str:
    return str(response.json().get("code"))


async def email_change_link(gotrue: GoTrue, outbox: Path, access_token: str, new: str):
    response = await gotrue.call("PUT", "/user", bearer=access_token, json={"email": new})
    assert response.status_code == 200, response.text
    return (await outbox_mails(outbox, new))[-1]


class TestANewPasswordSpendsEveryPendingLink:
    """GoTrue's `UpdatePassword` clears every one-time token of the user: a link issued while
    someone else held the account must not undo the owner's new password."""

    async def test_an_email_change_asked_before_a_password_change_no_longer_applies(
        self, gotrue, outbox
    ):
        """An intruder with a session asks to move the account to their own mailbox; the owner
        changes the password (ending the intruder's session); the intruder's link is dead."""
        intruder = await gotrue.session()
        email = intruder["user"]["email"]
        owner = (await gotrue.sign_in(email)).json()
        stolen = unique_email()
        link = await email_change_link(gotrue, outbox, intruder["access_token"], stolen)

        changed = await gotrue.call(
            "PUT", "/user", bearer=owner["access_token"], json={"password": NEW_PASSWORD}
        )
        by_link = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "token_hash": link.token}
        )
        by_code = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "email": stolen, "token": link.code}
        )

        assert changed.status_code == 200
        assert (by_link.status_code, code(by_link)) == (403, "otp_expired")
        assert (by_code.status_code, code(by_code)) == (403, "otp_expired")
        assert (await gotrue.sign_in(email, NEW_PASSWORD)).status_code == 200

    async def test_an_email_change_asked_before_an_admin_password_reset_no_longer_applies(
        self, gotrue, outbox
    ):
        intruder = await gotrue.session()
        stolen = unique_email()
        link = await email_change_link(gotrue, outbox, intruder["access_token"], stolen)

        await gotrue.admin(
            "PUT", f"/users/{intruder['user']['id']}", json={"password": NEW_PASSWORD}
        )
        response = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "token_hash": link.token}
        )

        assert (response.status_code, code(response)) == (403, "otp_expired")

    async def test_a_recovery_by_link_spends_a_pending_email_change(self, gotrue, outbox):
        """The owner takes the account back through the recovery mail: the intruder's pending
        change is spent with it (GoTrue's `Recover` clears every token)."""
        intruder = await gotrue.session()
        email = intruder["user"]["email"]
        stolen = unique_email()
        link = await email_change_link(gotrue, outbox, intruder["access_token"], stolen)
        recovery = await recovery_mail(gotrue, outbox, email, count=2)  # after the notice

        recovered = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": recovery.token}
        )
        response = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "token_hash": link.token}
        )

        assert recovered.status_code == 200
        assert (response.status_code, code(response)) == (403, "otp_expired")


class TestAnEmailChangeSpendsTheOldAddressesLinks:
    """A recovery or magic link mailed to the old address must not sign in once the address
    has moved (GoTrue's `ConfirmEmailChange` clears every token): the old mailbox may be the
    reason for the move."""

    @pytest.mark.parametrize("kind", ["recovery", "magiclink"])
    async def test_a_link_mailed_to_the_old_address_dies_when_the_change_applies(
        self, gotrue, outbox, kind
    ):
        session = await gotrue.session()
        old, new = session["user"]["email"], unique_email()
        if kind == "recovery":
            old_link = await recovery_mail(gotrue, outbox, old)
        else:
            await gotrue.call("POST", "/otp", json={"email": old})
            (old_link,) = await outbox_mails(outbox, old)
        change = await email_change_link(gotrue, outbox, session["access_token"], new)

        applied = await gotrue.call(
            "POST", "/verify", json={"type": "email_change", "token_hash": change.token}
        )
        response = await gotrue.call(
            "POST", "/verify", json={"type": kind, "token_hash": old_link.token}
        )

        assert applied.json()["user"]["email"] == new
        assert (response.status_code, code(response)) == (403, "otp_expired")


class TestAnAdminEmailChangeSpendsTheOldAddressesLinks:
    async def test_a_recovery_link_mailed_to_the_old_address_dies(self, gotrue, outbox):
        """The admin moves an account off a mailbox (lost, or someone else's now): what was
        mailed there must not sign in afterwards."""
        session = await gotrue.session()
        old = session["user"]["email"]
        recovery = await recovery_mail(gotrue, outbox, old)

        moved = await gotrue.admin(
            "PUT", f"/users/{session['user']['id']}", json={"email": unique_email()}
        )
        response = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": recovery.token}
        )

        assert moved.status_code == 200
        assert (response.status_code, code(response)) == (403, "otp_expired")


class TestOtpTimingForANewAddress:
    """`/otp` answers a known and a new address alike: with a password hash for the new user's
    throwaway password, the new address took an argon2 hash longer (16 ms against 91 ms here),
    which told them apart as surely as a different answer."""

    async def test_a_new_address_costs_no_password_hash(self, gotrue, monkeypatch):
        hashed: list[str] = []
        real_hash = passwords.hash_password

        async def counting(password: str) -> str:
            hashed.append("x")
            return await real_hash(password)

        # The first new address of the process may hash its one unusable password.
        await gotrue.call("POST", "/otp", json={"email": unique_email()})
        monkeypatch.setattr(provider_module, "hash_password", counting)
        response = await gotrue.call("POST", "/otp", json={"email": unique_email()})

        assert (response.status_code, response.json()) == (200, {})
        assert hashed == []

    async def test_the_user_it_makes_has_no_usable_password(self, gotrue, outbox):
        email = unique_email()
        await gotrue.call("POST", "/otp", json={"email": email})
        (mail,) = await outbox_mails(outbox, email)

        signed_in = await gotrue.call(
            "POST", "/verify", json={"type": "magiclink", "token_hash": mail.token}
        )
        token = signed_in.json()["access_token"]
        set_password = await gotrue.call(
            "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD}
        )

        assert signed_in.status_code == 200
        assert set_password.status_code == 200
        assert (await gotrue.sign_in(email, NEW_PASSWORD)).status_code == 200


class TestAUserUpdateIsAllOrNothing:
    """`PUT /user {password, email}` with a taken or rate-limited address is refused before
    anything changes, as GoTrue checks the address first and writes in one transaction."""

    async def test_a_taken_address_leaves_the_password_as_it_was(self, gotrue):
        taken = (await gotrue.session())["user"]["email"]
        session = await gotrue.session()
        email = session["user"]["email"]

        response = await gotrue.call(
            "PUT",
            "/user",
            bearer=session["access_token"],
            json={"password": NEW_PASSWORD, "email": taken.upper(), "data": {"x": 1}},
        )
        user = await gotrue.call("GET", "/user", bearer=session["access_token"])

        assert (response.status_code, code(response)) == (422, "email_exists")
        assert (await gotrue.sign_in(email, NEW_PASSWORD)).status_code == 400
        assert (await gotrue.sign_in(email, PASSWORD)).status_code == 200
        assert user.json()["user_metadata"] == {}

    async def test_a_mail_limit_leaves_the_password_as_it_was(self, make_gotrue):
        gotrue = await make_gotrue(rate_limit_email_per_recipient="1/hour")
        session = await gotrue.session()
        email, new = session["user"]["email"], unique_email()
        await gotrue.call("POST", "/recover", json={"email": new})  # spends `new`'s one mail
        alone = await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"email": new}
        )

        response = await gotrue.call(
            "PUT",
            "/user",
            bearer=session["access_token"],
            json={"password": NEW_PASSWORD, "email": new},
        )

        assert (alone.status_code, code(alone)) == (429, "over_email_send_rate_limit")
        assert response.status_code == 429
        assert response.headers["retry-after"]
        assert (await gotrue.sign_in(email, PASSWORD)).status_code == 200


class TestNonceGuessing:
    """The re-authentication nonce is 6 digits: each guess counts toward the account's sign-in
    limit, as a password or a mailed code does, or a stolen day-old session gets it by trying."""

    @pytest.fixture
    async def strict(self, make_gotrue, monkeypatch) -> GoTrue:
        monkeypatch.setattr(gotrue_operations, "REAUTHENTICATION_WINDOW_SECONDS", -1)
        driver: GoTrue = await make_gotrue(
            gotrue_security_update_password_require_reauthentication=True,
            rate_limit_signin_per_account="3/minute",
        )
        return driver

    async def test_guessing_nonces_hits_the_sign_in_limit(self, strict, outbox, caplog):
        caplog.set_level(logging.INFO)
        session = await strict.session()
        token = session["access_token"]
        await strict.call("GET", "/reauthenticate", bearer=token)
        (mail,) = await outbox_mails(outbox, session["user"]["email"])
        guesses = [g for g in ("000000", "111111", "222222", "333333") if g != mail.code]

        statuses = [
            (
                await strict.call(
                    "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD, "nonce": guess}
                )
            ).status_code
            for guess in guesses[:4]
        ]

        assert statuses[:3] == [422, 422, 422]
        assert statuses[3] == 429
        assert "rate_limited" in caplog.text

    async def test_a_weak_password_does_not_spend_the_nonce(self, strict, outbox):
        session = await strict.session()
        token = session["access_token"]
        await strict.call("GET", "/reauthenticate", bearer=token)
        (mail,) = await outbox_mails(outbox, session["user"]["email"])

        weak = await strict.call(
            "PUT", "/user", bearer=token, json={"password": "short", "nonce": mail.code}
        )
        good = await strict.call(
            "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD, "nonce": mail.code}
        )

        assert (weak.status_code, code(weak)) == (422, "weak_password")
        assert good.status_code == 200


__all__ = ["follow", "fragment"]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
class TestDatabaseDown:
    """Every lifecycle route answers GoTrue's 503 (retryable for both clients) while the
    database is unreachable, never a 500, and GET /verify never redirects with a verdict."""

    async def test_each_route_is_503(self, make_settings, postgres_url):
        async with app_behind_cuttable_proxy(
            make_settings,
            postgres_url,
            gotrue_api_enabled=True,
            supabase_anon_key=ANON_KEY,
            supabase_service_role_key=SERVICE_ROLE_KEY,
            database_timeout_seconds=1.0,
        ) as (client, proxy):
            gotrue = GoTrue(client)
            session = await gotrue.session()
            token, user_id = session["access_token"], session["user"]["id"]
            await proxy.cut()
            answers = {
                "recover": await gotrue.call("POST", "/recover", json={"email": unique_email()}),
                "otp": await gotrue.call("POST", "/otp", json={"email": unique_email()}),
                "resend": await gotrue.call(
                    "POST", "/resend", json={"type": "signup", "email": unique_email()}
                ),
                "verify hash": await gotrue.call(
                    "POST", "/verify", json={"type": "recovery", "token_hash": "a" * 43}
                ),
                "verify code": await gotrue.call(
                    "POST",
                    "/verify",
                    json={"type": "email", "email": unique_email(), "token": "123456"},
                ),
                "verify get": await gotrue.call(
                    "GET", "/verify?type=signup&token=" + "a" * 43, key=None
                ),
                "reauthenticate": await gotrue.call("GET", "/reauthenticate", bearer=token),
                "user email": await gotrue.call(
                    "PUT", "/user", bearer=token, json={"email": unique_email()}
                ),
                "user password": await gotrue.call(
                    "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD}
                ),
                "invite": await gotrue.call(
                    "POST",
                    "/invite",
                    key=SERVICE_ROLE_KEY,
                    bearer=SERVICE_ROLE_KEY,
                    json={"email": unique_email()},
                ),
                "generate_link": await gotrue.admin(
                    "POST", "/generate_link", json={"type": "magiclink", "email": unique_email()}
                ),
                "admin update": await gotrue.admin(
                    "PUT", f"/users/{user_id}", json={"password": NEW_PASSWORD}
                ),
            }

        for route, response in answers.items():
            assert response.status_code == 503, (route, response.text)
            assert response.json()["code"] == "unexpected_failure", route
            assert response.headers["retry-after"], route


# `redirect_to` values that must become SITE_URL (the first CORS origin in these tests):
# browsers read each as another host (or as script) whatever this server's parser thinks.
HOSTILE_REDIRECTS = [
    "https://evil.example",
    "//evil.example",
    "https:/\\evil.example",
    "javascript:alert(1)",
    f"{SPA_ORIGIN}@evil.example",
    "http://evil.example\\@localhost:5173",  # WHATWG: host evil.example; urlsplit: localhost
    "http://evil.example\\\\@localhost:5173/",
    "http://evil.example\t@localhost:5173",
    "http://evil.example%40@localhost:5173",
    "http://user:pass@localhost:5173/",
    f"{SPA_ORIGIN}.evil.example",
    "http://\uff4cocalhost:5173",  # a full-width l
    "data:text/html,<script>alert(1)</script>",
]


class TestOpenRedirect:
    @pytest.mark.parametrize("redirect_to", HOSTILE_REDIRECTS)
    async def test_get_verify_sends_a_hostile_redirect_to_the_site(self, gotrue, redirect_to):
        response = await gotrue.call(
            "GET",
            "/verify",
            key=None,
            params={"type": "signup", "token": "a" * 43, "redirect_to": redirect_to},
        )

        assert response.status_code == 303
        assert response.headers["location"].startswith(f"{SPA_ORIGIN}#")

    @pytest.mark.parametrize("redirect_to", HOSTILE_REDIRECTS)
    async def test_a_mails_link_and_generate_link_carry_the_site_instead(
        self, gotrue, outbox, redirect_to
    ):
        email = (await gotrue.session())["user"]["email"]

        await gotrue.call(
            "POST", "/recover", params={"redirect_to": redirect_to}, json={"email": email}
        )
        (mail,) = await outbox_mails(outbox, email)
        generated = await gotrue.admin(
            "POST",
            "/generate_link",
            json={"type": "recovery", "email": email, "redirect_to": redirect_to},
        )

        assert mail.query["redirect_to"] == SPA_ORIGIN
        assert generated.json()["redirect_to"] == SPA_ORIGIN
        assert parse_qs(urlsplit(generated.json()["action_link"]).query)["redirect_to"] == [
            SPA_ORIGIN
        ]

    @pytest.mark.parametrize(
        "redirect_to",
        [f"{SPA_ORIGIN}/welcome?x=1", "http://LOCALHOST:5173/a", f"{SPA_ORIGIN}/" + "a" * 2000],
    )
    async def test_an_allowed_redirect_is_kept(self, gotrue, redirect_to):
        response = await gotrue.call(
            "GET",
            "/verify",
            key=None,
            params={"type": "signup", "token": "a" * 43, "redirect_to": redirect_to},
        )

        assert response.headers["location"].split("#")[0] == redirect_to


class TestLogs:
    async def test_the_lifecycle_leaves_no_secret_in_any_log_line(
        self, make_gotrue, outbox, monkeypatch, caplog
    ):
        """Sign-up with confirmation, the link, recovery by code, a magic link, a nonce, an
        email change, generate_link and an invitation: no token, code, nonce, password, link
        or session in a record, refusals included."""
        caplog.set_level(logging.DEBUG)
        monkeypatch.setattr(gotrue_operations, "REAUTHENTICATION_WINDOW_SECONDS", -1)
        gotrue = await make_gotrue(
            gotrue_mailer_autoconfirm=False,
            gotrue_security_update_password_require_reauthentication=True,
        )
        email, new = unique_email(), unique_email()
        await gotrue.signup(email)
        (confirmation,) = await outbox_mails(outbox, email)
        opened = await follow(gotrue, confirmation.link)
        session = fragment(opened.headers["location"])
        recovery = await recovery_mail(gotrue, outbox, email, count=2)
        by_code = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "email": email, "token": recovery.code}
        )
        await gotrue.call("POST", "/otp", json={"email": email})
        magic = (await outbox_mails(outbox, email, 3))[-1]
        await gotrue.call("POST", "/verify", json={"type": "magiclink", "token_hash": "x" * 43})
        token = by_code.json()["access_token"]
        await gotrue.call("GET", "/reauthenticate", bearer=token)
        nonce = (await outbox_mails(outbox, email, 4))[-1]
        await gotrue.call(
            "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD, "nonce": "000001"}
        )
        changed = await gotrue.call(
            "PUT", "/user", bearer=token, json={"password": NEW_PASSWORD, "nonce": nonce.code}
        )
        change = await email_change_link(gotrue, outbox, token, new)
        generated = (
            await gotrue.admin("POST", "/generate_link", json={"type": "recovery", "email": email})
        ).json()
        invited = unique_email()
        await gotrue.call(
            "POST",
            "/invite",
            key=SERVICE_ROLE_KEY,
            bearer=SERVICE_ROLE_KEY,
            json={"email": invited},
        )
        (invitation,) = await outbox_mails(outbox, invited)

        assert changed.status_code == 200, changed.text
        logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
        assert caplog.records
        secrets = [
            PASSWORD,
            NEW_PASSWORD,
            session["access_token"],
            session["refresh_token"],
            by_code.json()["refresh_token"],
            token,
            generated["action_link"],
            generated["hashed_token"],
        ]
        codes = [generated["email_otp"], nonce.code]
        for mail in (confirmation, recovery, magic, change, invitation):
            secrets += [mail.link, mail.token]
            codes.append(mail.code)
        for secret in secrets:
            assert secret not in logged
        # Six digits can turn up inside a timestamp or a thread id: codes are looked for as
        # whole numbers in the text of each record only.
        texts = "\n".join(
            " ".join(
                [record.getMessage(), *(v for v in vars(record).values() if isinstance(v, str))]
            )
            for record in caplog.records
        )
        for six_digits in codes:
            assert not re.search(rf"(?<![\d.]){six_digits}(?!\d)", texts)


class TestRedisDown:
    """With the shared limiter's store unreachable, the limits fall back to in-process counts:
    the lifecycle still answers, and guessing a code is still stopped."""

    async def test_recover_answers_and_code_guesses_are_still_limited(self, make_gotrue):
        gotrue = await make_gotrue(
            redis_url="redis://127.0.0.1:1/0", rate_limit_signin_per_account="3/minute"
        )
        email = (await gotrue.session())["user"]["email"]

        recovered = await gotrue.call("POST", "/recover", json={"email": email})
        statuses = [
            (
                await gotrue.call(
                    "POST", "/verify", json={"type": "email", "email": email, "token": f"{n:06d}"}
                )
            ).status_code
            for n in range(4)
        ]

        assert (recovered.status_code, recovered.json()) == (200, {})
        assert statuses[3] == 429


class TestWhatHeld:
    """Attacks that found nothing, kept so that they stay that way."""

    async def test_another_users_nonce_is_refused(self, make_gotrue, outbox, monkeypatch):
        monkeypatch.setattr(gotrue_operations, "REAUTHENTICATION_WINDOW_SECONDS", -1)
        gotrue = await make_gotrue(gotrue_security_update_password_require_reauthentication=True)
        alice, mallory = await gotrue.session(), await gotrue.session()
        await gotrue.call("GET", "/reauthenticate", bearer=alice["access_token"])
        (mail,) = await outbox_mails(outbox, alice["user"]["email"])

        response = await gotrue.call(
            "PUT",
            "/user",
            bearer=mallory["access_token"],
            json={"password": NEW_PASSWORD, "nonce": mail.code},
        )

        assert (response.status_code, code(response)) == (422, "reauthentication_not_valid")

    async def test_a_code_works_only_with_its_own_address_in_any_spelling(self, gotrue):
        alice, bob = await gotrue.session(), await gotrue.session()
        link = (
            await gotrue.admin(
                "POST",
                "/generate_link",
                json={"type": "magiclink", "email": alice["user"]["email"]},
            )
        ).json()

        as_bob = await gotrue.call(
            "POST",
            "/verify",
            json={"type": "magiclink", "email": bob["user"]["email"], "token": link["email_otp"]},
        )
        as_alice_upper = await gotrue.call(
            "POST",
            "/verify",
            json={
                "type": "magiclink",
                "email": alice["user"]["email"].upper(),
                "token": link["email_otp"],
            },
        )

        assert (as_bob.status_code, code(as_bob)) == (403, "otp_expired")
        assert as_alice_upper.json()["user"]["id"] == alice["user"]["id"]

    @pytest.mark.parametrize("kind", ["signup", "invite", "email_change", "magiclink"])
    async def test_a_recovery_token_is_no_other_kind(self, gotrue, kind):
        email = (await gotrue.session())["user"]["email"]
        link = (
            await gotrue.admin("POST", "/generate_link", json={"type": "recovery", "email": email})
        ).json()

        other = await gotrue.call(
            "POST", "/verify", json={"type": kind, "token_hash": link["hashed_token"]}
        )

        if kind == "magiclink":  # GoTrue's recovery and magic link are one token
            assert other.status_code == 200
        else:
            assert (other.status_code, code(other)) == (403, "otp_expired")

    async def test_a_deleted_users_link_and_code_are_refused(self, gotrue):
        user = (await gotrue.session())["user"]
        link = (
            await gotrue.admin(
                "POST", "/generate_link", json={"type": "recovery", "email": user["email"]}
            )
        ).json()
        await gotrue.admin("DELETE", f"/users/{user['id']}")

        by_link = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": link["hashed_token"]}
        )
        by_code = await gotrue.call(
            "POST",
            "/verify",
            json={"type": "recovery", "email": user["email"], "token": link["email_otp"]},
        )

        assert (by_link.status_code, code(by_link)) == (403, "otp_expired")
        assert (by_code.status_code, code(by_code)) == (403, "otp_expired")
