"""GoTrue's secure email change under /auth/v1 (GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED, on by
default as GoTrue's): `PUT /user {email}` mails a link and code to each address; with autoconfirm
off the first verify (either one) is GoTrue's `singleConfirmationAccepted` and the second applies
the change (GoTrue `internal/api/verify.go` `emailChangeVerify`, `internal/api/mail.go`
`sendEmailChange`). Raw HTTP on SQLite and PostgreSQL, then supabase-py, unchanged, with its mails
caught by a real SMTP server. The switch off (today's one link) is test_lifecycle.py's
`TestEmailChange`; supabase-js is js/lifecycle.mjs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from supabase_auth.errors import AuthApiError

from backend.app.core.settings import Settings
from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.gotrue.mails import GoTrueMail, count_outbox, outbox_mails, received_mails
from backend.tests.gotrue.test_lifecycle import follow, fragment
from backend.tests.gotrue.test_pkce import exchange, new_verifier, pkce, query
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from supabase import AsyncClient, AsyncClientOptions, acreate_client

HALF_DONE = "Confirmation link accepted. Please proceed to confirm link sent to the other email"
NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "data" / "outbox"


@pytest.fixture
async def secure(make_gotrue: Callable[..., Any]) -> GoTrue:
    """GoTrue's API with autoconfirm off and the switch as it comes (on)."""
    driver: GoTrue = await make_gotrue(gotrue_mailer_autoconfirm=False)
    return driver


async def confirmed_session(gotrue: GoTrue) -> dict[str, Any]:
    """A confirmed user's session (autoconfirm is off: the admin confirms, then a sign-in)."""
    email = unique_email()
    created = await gotrue.admin(
        "POST", "/users", json={"email": email, "password": PASSWORD, "email_confirm": True}
    )
    assert created.status_code == 200, created.text
    signed_in = await gotrue.sign_in(email)
    assert signed_in.status_code == 200, signed_in.text
    session: dict[str, Any] = signed_in.json()
    return session


async def change_email(
    gotrue: GoTrue, outbox: Path, session: dict[str, Any], new: str, count: int = 1
) -> tuple[GoTrueMail, GoTrueMail]:
    """`PUT /user {email}`; the newest mail to the current address (its `count`th) and the
    first to the new one."""
    response = await gotrue.call(
        "PUT", "/user", bearer=session["access_token"], json={"email": new}
    )
    assert response.status_code == 200, response.text
    old = session["user"]["email"]
    current = (await outbox_mails(outbox, old, count))[-1]
    (to_new,) = await outbox_mails(outbox, new)
    return current, to_new


async def verify(gotrue: GoTrue, token_hash: str) -> httpx.Response:
    return await gotrue.call(
        "POST", "/verify", json={"type": "email_change", "token_hash": token_hash}
    )


async def email_of(gotrue: GoTrue, user_id: str) -> str:
    response = await gotrue.admin("GET", f"/users/{user_id}")
    email: str = response.json()["email"]
    return email


class TestSwitch:
    def test_on_by_default_as_gotrue_and_read_under_gotrues_name(self, monkeypatch):
        """GoTrue's default (`internal/conf/configuration.go`): on."""
        default = Settings(_env_file=None).gotrue_mailer_secure_email_change_enabled
        monkeypatch.setenv("GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED", "false")

        assert default is True
        assert Settings(_env_file=None).gotrue_mailer_secure_email_change_enabled is False


class TestMails:
    async def test_each_address_gets_its_own_link_and_code(self, secure, outbox):
        """GoTrue's `EmailChangeMail`: one mail per address, each with that address's token
        and code (`{{ .Token }}`), none with the other's."""
        session = await confirmed_session(secure)
        old, new = session["user"]["email"], unique_email()

        response = await secure.call(
            "PUT", "/user", bearer=session["access_token"], json={"email": new}
        )
        (current,) = await outbox_mails(outbox, old)
        (to_new,) = await outbox_mails(outbox, new)

        assert response.json()["new_email"] == new
        assert response.json()["email"] == old
        assert current.query["type"] == to_new.query["type"] == "email_change"
        assert current.query["redirect_to"] == SPA_ORIGIN
        assert current.token != to_new.token
        assert to_new.token not in current.text
        assert to_new.code not in current.text
        assert current.token not in to_new.text
        assert new in current.text
        assert await email_of(secure, session["user"]["id"]) == old


class TestTwoVerifies:
    @pytest.mark.parametrize("first_side", ["current", "new"])
    async def test_the_first_is_accepted_and_the_second_applies_the_change(
        self, secure, outbox, first_side
    ):
        session = await confirmed_session(secure)
        new = unique_email()
        current, to_new = await change_email(secure, outbox, session, new)
        first, second = (current, to_new) if first_side == "current" else (to_new, current)

        accepted = await verify(secure, first.token)
        between = await email_of(secure, session["user"]["id"])
        applied = await verify(secure, second.token)

        assert (accepted.status_code, accepted.json()) == (200, {"msg": HALF_DONE, "code": "200"})
        assert between == session["user"]["email"]
        assert applied.status_code == 200, applied.text
        assert applied.json()["user"]["email"] == new
        assert applied.json()["access_token"]
        assert (await secure.sign_in(new)).status_code == 200

    async def test_the_codes_each_with_its_own_address(self, secure, outbox):
        """`POST /verify {type, email, token}`: the current address's code with the current
        address (GoTrue's `FindUserForEmailChange` tries it first), the new one's with the new."""
        session = await confirmed_session(secure)
        old, new = session["user"]["email"], unique_email()
        current, to_new = await change_email(secure, outbox, session, new)

        crossed = await secure.call(
            "POST", "/verify", json={"type": "email_change", "email": new, "token": current.code}
        )
        accepted = await secure.call(
            "POST", "/verify", json={"type": "email_change", "email": old, "token": current.code}
        )
        applied = await secure.call(
            "POST", "/verify", json={"type": "email_change", "email": new, "token": to_new.code}
        )

        assert (crossed.status_code, crossed.json()["code"]) == (403, "otp_expired")
        assert accepted.json() == {"msg": HALF_DONE, "code": "200"}
        assert applied.json()["user"]["email"] == new

    async def test_get_verify_redirects_with_gotrues_message_then_with_a_session(
        self, secure, outbox
    ):
        """GoTrue's `prepRedirectURL`: `#message=…&sb=` (Go's sorted `url.Values.Encode`)."""
        session = await confirmed_session(secure)
        new = unique_email()
        current, to_new = await change_email(secure, outbox, session, new)

        first = await follow(secure, current.link)
        second = await follow(secure, to_new.link)
        values = fragment(second.headers["location"])

        location = urlsplit(first.headers["location"])
        assert first.status_code == 303
        assert f"{location.scheme}://{location.netloc}" == SPA_ORIGIN
        assert location.fragment == (
            "message=Confirmation+link+accepted.+Please+proceed+to+confirm+link+sent+to+the+"
            "other+email&sb="
        )
        assert fragment(first.headers["location"]) == {"message": HALF_DONE, "sb": ""}
        assert second.status_code == 303
        assert values["type"] == "email_change"
        user = await secure.call("GET", "/user", bearer=values["access_token"])
        assert user.json()["email"] == new

    async def test_pkce_both_links_are_pkce_and_the_second_gives_the_code(self, secure, outbox):
        """GoTrue's `sendEmailChange` prefixes both tokens; `verifyGet` answers the first with
        `prepRedirectURL` (the message in the query too, a PKCE flow's) and issues the auth
        code only on the second, which applies the change (one `email_change` flow state)."""
        session = await confirmed_session(secure)
        new, verifier = unique_email(), new_verifier()
        asked = await secure.call(
            "PUT", "/user", bearer=session["access_token"], json={"email": new, **pkce(verifier)}
        )
        assert asked.status_code == 200, asked.text
        current = (await outbox_mails(outbox, session["user"]["email"]))[-1]
        (to_new,) = await outbox_mails(outbox, new)

        first = await follow(secure, current.link)
        second = await follow(secure, to_new.link)
        exchanged = await exchange(secure, query(second.headers["location"])["code"], verifier)

        assert current.token.startswith("pkce_")
        assert to_new.token.startswith("pkce_")
        assert first.status_code == 303
        assert query(first.headers["location"]) == {"message": HALF_DONE}
        assert fragment(first.headers["location"]) == {"message": HALF_DONE, "sb": ""}
        assert second.status_code == 303
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.json()["user"]["email"] == new

    async def test_a_banned_users_first_verify_is_403_and_spends_nothing(self, secure, outbox):
        """`verify.go` checks the ban before `emailChangeVerify`: the first verify of a banned
        user is refused too, and its token still counts once the ban is lifted."""
        session = await confirmed_session(secure)
        current, _ = await change_email(secure, outbox, session, unique_email())
        user_id = session["user"]["id"]

        async def ban(duration: str) -> None:
            banned = await secure.admin("PUT", f"/users/{user_id}", json={"ban_duration": duration})
            assert banned.status_code == 200, banned.text

        await ban("24h")
        refused = await verify(secure, current.token)
        await ban("none")
        accepted = await verify(secure, current.token)

        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "user_banned"
        assert accepted.json() == {"msg": HALF_DONE, "code": "200"}

    async def test_the_first_token_replayed_after_it_was_accepted_is_refused(self, secure, outbox):
        """GoTrue clears the confirmed side's token: a replay is `otp_expired` and leaves the
        change half done, so the other token still applies it."""
        session = await confirmed_session(secure)
        new = unique_email()
        current, to_new = await change_email(secure, outbox, session, new)
        await verify(secure, current.token)

        replayed = await verify(secure, current.token)
        link = await follow(secure, current.link)
        applied = await verify(secure, to_new.token)

        assert (replayed.status_code, replayed.json()["code"]) == (403, "otp_expired")
        assert fragment(link.headers["location"])["error_code"] == "otp_expired"
        assert applied.json()["user"]["email"] == new

    async def test_both_at_once_one_is_first_and_the_other_applies(self, secure, outbox):
        """The user's row lock: two verifies racing cannot both be "the first"."""
        session = await confirmed_session(secure)
        new = unique_email()
        current, to_new = await change_email(secure, outbox, session, new)

        answers = await asyncio.gather(verify(secure, current.token), verify(secure, to_new.token))

        bodies = [answer.json() for answer in answers]
        assert [answer.status_code for answer in answers] == [200, 200]
        assert sorted("access_token" in body for body in bodies) == [False, True]
        assert {"msg": HALF_DONE, "code": "200"} in bodies
        assert await email_of(secure, session["user"]["id"]) == new

    async def test_autoconfirm_on_either_token_applies_at_once(self, make_gotrue, outbox):
        """GoTrue's `emailChangeVerify` asks for two only when `!Autoconfirm`: both addresses
        are mailed, the first verify applies the change and spends the other's token."""
        gotrue = await make_gotrue()
        session = await gotrue.session()
        new = unique_email()
        current, to_new = await change_email(gotrue, outbox, session, new)

        applied = await verify(gotrue, current.token)
        other = await verify(gotrue, to_new.token)

        assert applied.json()["user"]["email"] == new
        assert (other.status_code, other.json()["code"]) == (403, "otp_expired")


class TestReplacedAndSpent:
    async def test_a_new_request_replaces_both_tokens_and_the_half_done_change(
        self, secure, outbox
    ):
        """The old address's token used after a newer `PUT /user {email}` is refused, and the
        new pair needs both verifies again (GoTrue's `sendEmailChange`: status back to 0)."""
        session = await confirmed_session(secure)
        first_new, second_new = unique_email(), unique_email()
        old_current, old_to_new = await change_email(secure, outbox, session, first_new)
        await verify(secure, old_to_new.token)  # half done
        current, to_second = await change_email(secure, outbox, session, second_new, count=2)

        stale = await verify(secure, old_current.token)
        accepted = await verify(secure, to_second.token)
        applied = await verify(secure, current.token)

        assert (stale.status_code, stale.json()["code"]) == (403, "otp_expired")
        assert accepted.json() == {"msg": HALF_DONE, "code": "200"}
        assert applied.json()["user"]["email"] == second_new

    async def test_resend_mails_both_again_and_starts_over(self, secure, outbox):
        """GoTrue's `/resend` `email_change` is `sendEmailChange` again: two new tokens."""
        session = await confirmed_session(secure)
        old, new = session["user"]["email"], unique_email()
        first_current, first_new = await change_email(secure, outbox, session, new)
        await verify(secure, first_current.token)  # half done

        resent = await secure.call("POST", "/resend", json={"type": "email_change", "email": old})
        current = (await outbox_mails(outbox, old, 2))[-1]
        to_new = (await outbox_mails(outbox, new, 2))[-1]
        stale = await verify(secure, first_new.token)
        accepted = await verify(secure, to_new.token)
        applied = await verify(secure, current.token)

        assert (resent.status_code, resent.json()) == (200, {})
        assert stale.status_code == 403
        assert accepted.json() == {"msg": HALF_DONE, "code": "200"}
        assert applied.json()["user"]["email"] == new

    @pytest.mark.parametrize("half_done", [False, True])
    async def test_a_new_password_spends_both_tokens(self, secure, outbox, half_done):
        """GoTrue's `UpdatePassword` clears both change tokens: an intruder's pending change
        does not outlive the owner's new password."""
        session = await confirmed_session(secure)
        new = unique_email()
        current, to_new = await change_email(secure, outbox, session, new)
        if half_done:
            await verify(secure, current.token)

        changed = await secure.call(
            "PUT", "/user", bearer=session["access_token"], json={"password": NEW_PASSWORD}
        )
        answers = [await verify(secure, mail.token) for mail in (current, to_new)]

        assert changed.status_code == 200, changed.text
        assert [answer.status_code for answer in answers] == [403, 403]
        assert await email_of(secure, session["user"]["id"]) == session["user"]["email"]

    async def test_an_admin_setting_the_address_spends_both_tokens(self, secure, outbox):
        session = await confirmed_session(secure)
        current, to_new = await change_email(secure, outbox, session, unique_email())
        elsewhere = unique_email()

        updated = await secure.admin(
            "PUT", f"/users/{session['user']['id']}", json={"email": elsewhere}
        )
        answers = [await verify(secure, mail.token) for mail in (current, to_new)]

        assert updated.status_code == 200, updated.text
        assert [answer.status_code for answer in answers] == [403, 403]
        assert await email_of(secure, session["user"]["id"]) == elsewhere

    async def test_a_recovery_spends_both_tokens(self, secure, outbox):
        session = await confirmed_session(secure)
        old, new = session["user"]["email"], unique_email()
        current, to_new = await change_email(secure, outbox, session, new)
        await secure.call("POST", "/recover", json={"email": old})
        recovery = (await outbox_mails(outbox, old, 2))[-1]

        recovered = await secure.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": recovery.token}
        )
        answers = [await verify(secure, mail.token) for mail in (current, to_new)]

        assert recovered.status_code == 200, recovered.text
        assert [answer.status_code for answer in answers] == [403, 403]


class TestGenerateLink:
    async def test_current_and_new_links_are_the_two_tokens(self, secure):
        """GoTrue's `adminGenerateLink`: each type sets one side's token and keeps the other's,
        so the two links together make the same two-token change as `PUT /user`."""
        session = await confirmed_session(secure)
        email, new = session["user"]["email"], unique_email()
        tokens = {}
        for kind in ("email_change_current", "email_change_new"):
            generated = await secure.admin(
                "POST", "/generate_link", json={"type": kind, "email": email, "new_email": new}
            )
            assert generated.status_code == 200, generated.text
            assert generated.json()["verification_type"] == kind
            tokens[kind] = generated.json()["hashed_token"]

        accepted = await verify(secure, tokens["email_change_new"])
        applied = await verify(secure, tokens["email_change_current"])

        assert accepted.json() == {"msg": HALF_DONE, "code": "200"}
        assert applied.json()["user"]["email"] == new

    async def test_a_current_link_replaces_only_the_mailed_current_token(self, secure, outbox):
        session = await confirmed_session(secure)
        email, new = session["user"]["email"], unique_email()
        current, to_new = await change_email(secure, outbox, session, new)

        generated = await secure.admin(
            "POST",
            "/generate_link",
            json={"type": "email_change_current", "email": email, "new_email": new},
        )
        replaced = await verify(secure, current.token)
        accepted = await verify(secure, to_new.token)
        applied = await verify(secure, generated.json()["hashed_token"])

        assert (replaced.status_code, replaced.json()["code"]) == (403, "otp_expired")
        assert accepted.json() == {"msg": HALF_DONE, "code": "200"}
        assert applied.json()["user"]["email"] == new

    async def test_a_current_link_without_the_switch_is_refused(self, make_gotrue):
        """GoTrue `mail.go`: no current-address link without the secure email change."""
        gotrue = await make_gotrue(gotrue_mailer_secure_email_change_enabled=False)
        email = (await gotrue.session())["user"]["email"]

        response = await gotrue.admin(
            "POST",
            "/generate_link",
            json={"type": "email_change_current", "email": email, "new_email": unique_email()},
        )

        assert (response.status_code, response.json()) == (
            400,
            {
                "code": "validation_failed",
                "message": "Enable secure email change to generate link for current email",
            },
        )


class TestAuthUnchanged:
    async def test_auth_email_verify_takes_neither_token(self, secure, outbox):
        """/auth's one-step verify must not apply a secure change from one mailbox alone."""
        session = await confirmed_session(secure)
        new = unique_email()
        current, to_new = await change_email(secure, outbox, session, new)
        api = AuthApi(secure.client)

        answers = [
            await api.post("/auth/email/verify", {"token": mail.token})
            for mail in (current, to_new)
        ]

        assert [answer.status_code for answer in answers] == [400, 400]
        assert [answer.json()["code"] for answer in answers] == ["token_invalid"] * 2
        assert await email_of(secure, session["user"]["id"]) == session["user"]["email"]

    async def test_auth_email_change_still_sends_one_link_and_a_notice(self, secure, outbox):
        """The app's own contract (README): a link to the new address, a notice to the old."""
        api = AuthApi(secure.client)
        session = await confirmed_session(secure)
        old, new = session["user"]["email"], unique_email()
        bearer = {"Authorization": f"Bearer {session['access_token']}"}

        response = await api.post(
            "/auth/email", {"newEmail": new, "currentPassword": PASSWORD}, headers=bearer
        )
        (notice,) = await outbox_mails(outbox, old)
        (link,) = await outbox_mails(outbox, new)

        assert response.status_code == 202, response.text
        assert notice.link_or_none is None
        assert "#confirm-email?token=" in link.text
        assert count_outbox(outbox, old) == 1


class TestLogs:
    async def test_no_token_or_code_in_any_log_line(self, secure, outbox, caplog):
        caplog.set_level(logging.DEBUG)
        session = await confirmed_session(secure)
        new = unique_email()
        current, to_new = await change_email(secure, outbox, session, new)

        await follow(secure, current.link)
        await verify(secure, to_new.token)

        logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
        assert "email change half confirmed" in logged
        for mail in (current, to_new):
            assert mail.token not in logged
            assert mail.code not in logged


@pytest.fixture
async def clients(serve) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await clients(url, key=ANON_KEY)` -> a supabase-py client on its own httpx."""
    opened: list[httpx.AsyncClient] = []

    async def make(url: str, key: str = ANON_KEY) -> AsyncClient:
        http = httpx.AsyncClient()
        opened.append(http)
        options = AsyncClientOptions(
            auto_refresh_token=False, persist_session=False, httpx_client=http
        )
        return await acreate_client(url, key, options=options)

    yield make
    for http in opened:
        await http.aclose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestSupabasePy:
    @pytest.fixture
    def mailing(self, serve, make_smtp_server) -> Callable[..., Any]:
        """`with mailing() as (url, smtp):` autoconfirm off, mails to an SMTP server on
        loopback, the switch as it comes."""

        @contextmanager
        def run() -> Iterator[tuple[str, Any]]:
            smtp = make_smtp_server()
            settings = {
                "gotrue_mailer_autoconfirm": False,
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "smtp_tls": "none",
            }
            with serve(**settings) as url:
                yield url, smtp

        return run

    @pytest.mark.parametrize("first_side", ["current", "new"])
    async def test_update_user_then_verify_otp_with_each_token_hash(
        self, mailing, clients, first_side
    ):
        """supabase-py's `verify_otp` reads `"code": "200"` as pending (no user, no session)."""
        with mailing() as (url, smtp):
            admin = await clients(url, SERVICE_ROLE_KEY)
            client = await clients(url)
            old, new = unique_email(), unique_email()
            await admin.auth.admin.create_user(
                {"email": old, "password": PASSWORD, "email_confirm": True}
            )
            await client.auth.sign_in_with_password({"email": old, "password": PASSWORD})

            asked = await client.auth.update_user({"email": new})
            (current,) = await received_mails(smtp, old)
            (to_new,) = await received_mails(smtp, new)
            first, second = (current, to_new) if first_side == "current" else (to_new, current)
            pending = await client.auth.verify_otp(
                {"type": "email_change", "token_hash": first.token}
            )
            with pytest.raises(AuthApiError) as replayed:
                await client.auth.verify_otp({"type": "email_change", "token_hash": first.token})
            applied = await client.auth.verify_otp(
                {"type": "email_change", "token_hash": second.token}
            )

        assert asked.user.new_email == new
        assert asked.user.email == old
        assert (pending.user, pending.session) == (None, None)
        assert (replayed.value.status, str(replayed.value.code)) == (403, "otp_expired")
        assert applied.session is not None
        assert applied.user is not None
        assert applied.user.email == new

    async def test_resend_then_the_codes(self, mailing, clients):
        with mailing() as (url, smtp):
            admin = await clients(url, SERVICE_ROLE_KEY)
            client = await clients(url)
            old, new = unique_email(), unique_email()
            await admin.auth.admin.create_user(
                {"email": old, "password": PASSWORD, "email_confirm": True}
            )
            await client.auth.sign_in_with_password({"email": old, "password": PASSWORD})
            await client.auth.update_user({"email": new})
            await received_mails(smtp, new)

            await client.auth.resend({"type": "email_change", "email": old})
            current = (await received_mails(smtp, old, 2))[-1]
            to_new = (await received_mails(smtp, new, 2))[-1]
            pending = await client.auth.verify_otp(
                {"type": "email_change", "email": old, "token": current.code}
            )
            applied = await client.auth.verify_otp(
                {"type": "email_change", "email": new, "token": to_new.code}
            )

        assert (pending.user, pending.session) == (None, None)
        assert applied.user is not None
        assert applied.user.email == new
