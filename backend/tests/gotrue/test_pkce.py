"""GoTrue's PKCE flow under /auth/v1, attacked input by input, on SQLite and PostgreSQL.

`code_challenge` on the routes that mail a link (GT `pkce.go` `validatePKCEParams`), the
`pkce_` link and `GET /verify`'s `?code=` (GT `verify.go`), and `POST /token?grant_type=pkce`
(GT `token.go` `PKCE`). The clients' own runs are in test_supabase_py.py and
test_supabase_js.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from backend.app.core.logging import redact
from backend.app.db.tables import identity_flow_states, utcnow
from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.gotrue.mails import GoTrueMail, count_outbox, outbox_mails
from backend.tests.helpers import unique_email
from backend.tests.security.conftest import security_events

PKCE_PARAMS = "PKCE flow requires code_challenge_method and code_challenge"
NOT_FOUND = {
    "code": "flow_state_not_found",
    "message": "invalid flow state, no valid flow state found",
}
BAD_VERIFIER = {
    "code": "bad_code_verifier",
    "message": "code challenge does not match previously saved code verifier",
}

# The routes that mail a link and take a challenge, with what else each needs.
CHALLENGE_ROUTES = [
    ("/recover", {}),
    ("/otp", {}),
    ("/resend", {"type": "signup"}),
    ("/signup", {"password": "a long enough passphrase"}),
]
NIL_UUID = "00000000-0000-0000-0000-000000000000"


def new_verifier() -> str:
    return secrets.token_urlsafe(48)  # 64 characters of RFC 7636's alphabet


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce(verifier: str, method: str = "s256") -> dict[str, str]:
    challenge = s256(verifier) if method.lower() == "s256" else verifier
    return {"code_challenge": challenge, "code_challenge_method": method}


def query(location: str) -> dict[str, str]:
    return {key: found[0] for key, found in parse_qs(urlsplit(location).query).items()}


def fragment(location: str) -> dict[str, str]:
    values = parse_qs(urlsplit(location).fragment, keep_blank_values=True)
    return {key: found[0] for key, found in values.items()}


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "data" / "outbox"


@pytest.fixture
async def confirming(make_gotrue) -> GoTrue:
    """GoTrue's API with GOTRUE_MAILER_AUTOCONFIRM=false."""
    driver: GoTrue = await make_gotrue(gotrue_mailer_autoconfirm=False)
    return driver


async def follow(gotrue: GoTrue, link: str, **params: str):
    """A browser opening a mail's link: GET /verify, no apikey, the redirect not followed."""
    parts = urlsplit(link)
    path = f"{parts.path.removeprefix('/auth/v1')}?{parts.query}"
    return await gotrue.call("GET", path, key=None, params=params or None)


async def mailed(gotrue: GoTrue, outbox: Path, path: str, body: dict[str, Any]) -> GoTrueMail:
    """POST a route that mails a link, and the newest mail to the address it names."""
    to = body.get("email", "")
    before = count_outbox(outbox, to)
    response = await gotrue.call("POST", path, json=body, params={"redirect_to": SPA_ORIGIN})
    assert response.status_code == 200, response.text
    return (await outbox_mails(outbox, to, before + 1))[-1]


async def recovery_code(gotrue: GoTrue, outbox: Path, email: str, verifier: str, method="s256"):
    """A recovery with PKCE, its link followed: the auth code of the redirect."""
    mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(verifier, method)})
    opened = await follow(gotrue, mail.link)
    assert opened.status_code == 303, opened.text
    return query(opened.headers["location"])["code"]


async def exchange(gotrue: GoTrue, auth_code: Any, code_verifier: Any):
    return await gotrue.call(
        "POST",
        "/token",
        params={"grant_type": "pkce"},
        json={"auth_code": auth_code, "code_verifier": code_verifier},
    )


async def flow_rows(gotrue: GoTrue) -> list[Any]:
    database = gotrue.app.state.services.database
    rows: list[Any] = await database.read(
        lambda conn: conn.execute(sa.select(identity_flow_states)).all()
    )
    return rows


async def age_flow_states(gotrue: GoTrue, seconds: int, *, column: str = "created_at") -> None:
    """Move every flow state's `column` `seconds` into the past (as time passing would)."""
    then = utcnow() - timedelta(seconds=seconds)

    def age(conn: sa.Connection) -> None:
        conn.execute(identity_flow_states.update().values({column: then}))

    await gotrue.app.state.services.database.write(age)


class TestChallengeParameters:
    """GoTrue `validatePKCEParams` on every route that takes it: 400 `validation_failed`."""

    @pytest.mark.parametrize(("path", "extra"), CHALLENGE_ROUTES)
    @pytest.mark.parametrize(
        "params",
        [
            {"code_challenge": "c" * 43},
            {"code_challenge_method": "s256"},
            {"code_challenge": "c" * 43, "code_challenge_method": ""},
        ],
    )
    async def test_one_without_the_other_is_validation_failed(
        self, confirming, outbox, path, extra, params
    ):
        email = unique_email()

        response = await confirming.call("POST", path, json={"email": email, **extra, **params})

        assert response.status_code == 400
        assert response.json() == {"code": "validation_failed", "message": PKCE_PARAMS}
        assert count_outbox(outbox, email) == 0

    @pytest.mark.parametrize(
        ("challenge", "message"),
        [
            ("c" * 42, "code challenge has to be between 43 and 128 characters"),
            ("c" * 129, "code challenge has to be between 43 and 128 characters"),
            ("c" * 42 + "!", "code challenge can only contain alphanumeric characters, hyphens, "
             "periods, underscores and tildes"),
            ("c" * 42 + "é", "code challenge can only contain alphanumeric characters, hyphens, "
             "periods, underscores and tildes"),
        ],
    )  # fmt: skip
    async def test_a_challenge_outside_rfc_7636_is_refused(self, gotrue, challenge, message):
        body = {
            "email": unique_email(),
            "code_challenge": challenge,
            "code_challenge_method": "s256",
        }

        response = await gotrue.call("POST", "/recover", json=body)

        assert (response.status_code, response.json()) == (
            400,
            {"code": "validation_failed", "message": message},
        )
        assert challenge not in response.text or len(challenge) < 43

    async def test_an_unsupported_method_is_refused_for_known_and_unknown_addresses(
        self, gotrue, outbox
    ):
        """GoTrue 500s here, and for `/recover` only when the address is known; refused up
        front, alike, so the answer tells no address from another."""
        known = unique_email()
        await gotrue.session(known)
        answers = []

        for email in (known, unique_email()):
            body = {"email": email, "code_challenge": "c" * 43, "code_challenge_method": "md5"}
            response = await gotrue.call("POST", "/recover", json=body)
            answers.append((response.status_code, response.json()))

        expected = (
            400,
            {"code": "validation_failed", "message": "code challenge method not supported"},
        )
        assert answers == [expected, expected]
        assert count_outbox(outbox, known) == 0

    @pytest.mark.parametrize("value", [5, 1.5, True, [], {"a": 1}])
    async def test_a_challenge_that_is_no_string_is_validation_failed(self, gotrue, value):
        body = {"email": unique_email(), "code_challenge": value, "code_challenge_method": "s256"}

        response = await gotrue.call("POST", "/recover", json=body)

        assert response.status_code == 400
        assert response.json()["code"] == "validation_failed"

    async def test_nulls_are_the_implicit_flow(self, gotrue, outbox):
        """What both clients send without PKCE: `code_challenge: null`."""
        email = unique_email()
        await gotrue.session(email)

        mail = await mailed(
            gotrue,
            outbox,
            "/recover",
            {"email": email, "code_challenge": None, "code_challenge_method": None},
        )
        opened = await follow(gotrue, mail.link)

        assert not mail.token.startswith("pkce_")
        assert "access_token" in fragment(opened.headers["location"])
        assert await flow_rows(gotrue) == []

    async def test_the_method_is_case_insensitive(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)

        code = await recovery_code(gotrue, outbox, email, verifier, method="S256")
        response = await exchange(gotrue, code, verifier)

        assert response.status_code == 200, response.text

    async def test_put_user_email_checks_the_challenge_before_changing_anything(
        self, gotrue, outbox
    ):
        session = await gotrue.session()
        new = unique_email()

        response = await gotrue.call(
            "PUT",
            "/user",
            bearer=session["access_token"],
            json={"email": new, "data": {"a": 1}, "code_challenge": "c" * 43},
        )
        user = await gotrue.call("GET", "/user", bearer=session["access_token"])

        assert response.status_code == 400
        assert response.json() == {"code": "validation_failed", "message": PKCE_PARAMS}
        assert user.json()["user_metadata"] == {}
        assert count_outbox(outbox, new) == 0


class TestPkceLinks:
    """A mail asked for with a challenge: a `pkce_` link whose redirect carries `?code=`."""

    async def test_recover_stores_a_flow_state_and_mails_a_pkce_link(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        session = await gotrue.session(email)

        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(verifier)})
        (row,) = await flow_rows(gotrue)

        assert mail.token.startswith("pkce_")
        assert row.user_id == session["user"]["id"]
        assert row.authentication_method == "recovery"
        assert (row.code_challenge, row.code_challenge_method) == (s256(verifier), "s256")
        assert row.auth_code_hash is None  # no code before the link is followed

    async def test_a_new_mail_replaces_the_flow_state_of_its_kind(self, gotrue, outbox):
        """The older link is spent, so its flow state (and a code issued on it) goes too."""
        email, first, second = unique_email(), new_verifier(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, first)

        await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(second)})
        (row,) = await flow_rows(gotrue)
        stale = await exchange(gotrue, code, first)

        assert row.code_challenge == s256(second)
        assert (stale.status_code, stale.json()) == (404, NOT_FOUND)

    async def test_an_unknown_address_stores_nothing(self, gotrue):
        body = {"email": unique_email(), **pkce(new_verifier())}

        response = await gotrue.call("POST", "/recover", json=body)

        assert (response.status_code, response.json()) == (200, {})
        assert await flow_rows(gotrue) == []

    async def test_following_the_link_redirects_with_a_code_and_no_session(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(verifier)})

        opened = await follow(gotrue, mail.link)
        location = opened.headers["location"]

        assert opened.status_code == 303
        assert location.startswith(f"{SPA_ORIGIN}?code=")
        assert set(query(location)) == {"code"}
        assert urlsplit(location).fragment == ""
        assert "access_token" not in location

    async def test_the_redirects_own_query_is_kept_and_its_code_replaced(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        target = f"{SPA_ORIGIN}/callback?next=%2Fideas&code=planted"
        body = {"email": email, **pkce(verifier)}
        response = await gotrue.call("POST", "/recover", json=body, params={"redirect_to": target})
        assert response.status_code == 200
        (mail,) = await outbox_mails(outbox, email)

        opened = await follow(gotrue, mail.link)
        values = query(opened.headers["location"])

        assert opened.headers["location"].startswith(f"{SPA_ORIGIN}/callback?")
        assert values["next"] == "/ideas"
        assert values["code"] != "planted"
        assert (await exchange(gotrue, values["code"], verifier)).status_code == 200

    async def test_post_verify_with_the_pkce_token_hash_answers_a_session(self, gotrue, outbox):
        """GoTrue `verifyPost`: a session whatever the flow (the token is the proof)."""
        email = unique_email()
        await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(new_verifier())})

        response = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": mail.token}
        )

        assert response.status_code == 200
        assert response.json()["user"]["email"] == email

    async def test_the_link_stripped_of_its_prefix_matches_nothing(self, gotrue, outbox):
        """Stripping `pkce_` does not turn the link into an implicit one with a session."""
        email = unique_email()
        await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(new_verifier())})
        stripped = mail.link.replace("token=pkce_", "token=")

        opened = await follow(gotrue, stripped)

        assert fragment(opened.headers["location"])["error_code"] == "otp_expired"
        assert "access_token" not in opened.headers["location"]

    async def test_a_used_link_puts_the_error_in_the_query_and_the_fragment(self, gotrue, outbox):
        """GoTrue `prepErrorRedirectURL`: for a PKCE link, the query too."""
        email = unique_email()
        await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(new_verifier())})
        await follow(gotrue, mail.link)

        again = await follow(gotrue, mail.link)
        location = again.headers["location"]
        expected = {
            "error": "access_denied",
            "error_code": "otp_expired",
            "error_description": "Email link is invalid or has expired",
        }

        assert again.status_code == 303
        assert query(location) == expected
        assert fragment(location) == {**expected, "sb": ""}

    async def test_a_link_whose_flow_state_is_gone_is_flow_state_not_found(self, gotrue, outbox):
        email = unique_email()
        await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(new_verifier())})
        await gotrue.app.state.services.database.write(
            lambda conn: conn.execute(identity_flow_states.delete())
        )

        opened = await follow(gotrue, mail.link)
        values = query(opened.headers["location"])
        kept = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": mail.token}
        )

        assert opened.status_code == 303
        assert values["error"] == "invalid_request"
        assert values["error_code"] == "flow_state_not_found"
        assert values["error_description"].startswith("No associated flow state found.")
        assert "code" not in values
        assert kept.status_code == 200  # nothing was spent, as GoTrue's verify rolls back

    async def test_type_email_cannot_name_a_flow_state_and_spends_nothing(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(verifier)})

        refused = await follow(gotrue, mail.link.replace("type=recovery", "type=email"))
        opened = await follow(gotrue, mail.link)

        assert query(refused.headers["location"])["error_code"] == "flow_state_not_found"
        assert (
            await exchange(gotrue, query(opened.headers["location"])["code"], verifier)
        ).status_code == 200

    async def test_autoconfirm_sign_up_ignores_the_challenge(self, gotrue):
        """GoTrue stores a flow state only with the confirmation mail: the session is here."""
        response = await gotrue.signup(unique_email(), **pkce(new_verifier()))

        assert response.status_code == 200
        assert "access_token" in response.json()
        assert await flow_rows(gotrue) == []

    @pytest.mark.parametrize(
        ("path", "extra"), [("/signup", {"password": "a long enough passphrase"}), ("/otp", {})]
    )
    async def test_a_confirmation_link_gives_a_code_for_a_confirmed_session(
        self, confirming, outbox, path, extra
    ):
        """Sign-up and `/otp` for a new address (GoTrue signs it up): the confirmation's
        flow state is `email/signup`."""
        email, verifier = unique_email(), new_verifier()

        mail = await mailed(confirming, outbox, path, {"email": email, **extra, **pkce(verifier)})
        (row,) = await flow_rows(confirming)
        opened = await follow(confirming, mail.link)
        response = await exchange(confirming, query(opened.headers["location"])["code"], verifier)

        assert mail.query["type"] == "signup"
        assert row.authentication_method == "email/signup"
        assert response.status_code == 200, response.text
        assert response.json()["user"]["email_confirmed_at"]

    async def test_resend_signup_with_a_challenge_is_a_pkce_link(self, confirming, outbox):
        email, verifier = unique_email(), new_verifier()
        await mailed(
            confirming, outbox, "/signup", {"email": email, "password": "a long enough passphrase"}
        )

        mail = await mailed(
            confirming, outbox, "/resend", {"type": "signup", "email": email, **pkce(verifier)}
        )
        opened = await follow(confirming, mail.link)
        response = await exchange(confirming, query(opened.headers["location"])["code"], verifier)

        assert mail.token.startswith("pkce_")
        assert response.status_code == 200, response.text

    async def test_an_email_change_link_gives_a_code_and_the_change_applies(self, gotrue, outbox):
        session = await gotrue.session()
        new, verifier = unique_email(), new_verifier()

        asked = await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"email": new, **pkce(verifier)}
        )
        (mail,) = await outbox_mails(outbox, new)
        opened = await follow(gotrue, mail.link)
        response = await exchange(gotrue, query(opened.headers["location"])["code"], verifier)

        assert asked.status_code == 200
        assert response.status_code == 200, response.text
        assert response.json()["user"]["email"] == new


class TestPkceGrant:
    """`POST /token?grant_type=pkce {auth_code, code_verifier}` (GoTrue `token.go` `PKCE`)."""

    async def test_the_verifier_of_an_s256_challenge_gets_gotrues_session(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)

        response = await exchange(gotrue, code, verifier)
        body = response.json()
        user = await gotrue.call("GET", "/user", bearer=body["access_token"])

        assert response.status_code == 200
        assert set(body) == {
            "access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"
        }  # fmt: skip
        assert body["token_type"] == "bearer"
        assert user.json()["email"] == email
        assert (await gotrue.refresh(body["refresh_token"])).status_code == 200

    async def test_plain_compares_the_verifier_itself(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier, method="plain")

        response = await exchange(gotrue, code, verifier)

        assert response.status_code == 200, response.text

    async def test_a_plain_flow_refuses_the_verifier_whose_hash_is_its_challenge(
        self, gotrue, outbox
    ):
        """plain with challenge C: the verifier must be C, not one whose S256 is C."""
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        body = {"email": email, "code_challenge": s256(verifier), "code_challenge_method": "plain"}
        mail = await mailed(gotrue, outbox, "/recover", body)
        code = query((await follow(gotrue, mail.link)).headers["location"])["code"]

        refused = await exchange(gotrue, code, verifier)
        accepted = await exchange(gotrue, code, s256(verifier))

        assert (refused.status_code, refused.json()) == (400, BAD_VERIFIER)
        assert accepted.status_code == 200

    async def test_an_s256_flow_refuses_the_challenge_as_verifier(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)

        response = await exchange(gotrue, code, s256(verifier))

        assert (response.status_code, response.json()) == (400, BAD_VERIFIER)

    async def test_a_code_works_once(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)

        first = await exchange(gotrue, code, verifier)
        replay = await exchange(gotrue, code, verifier)

        assert first.status_code == 200
        assert (replay.status_code, replay.json()) == (404, NOT_FOUND)
        assert await flow_rows(gotrue) == []

    async def test_racing_exchanges_of_one_code_give_one_session(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)

        answers = await asyncio.gather(*(exchange(gotrue, code, verifier) for _ in range(4)))

        assert sorted(answer.status_code for answer in answers) == [200, 404, 404, 404]

    async def test_a_wrong_verifier_is_refused_and_leaves_the_code_usable(self, gotrue, outbox):
        """GoTrue keeps the flow state: a stranger's guess cannot spend the owner's code."""
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)

        refused = await exchange(gotrue, code, new_verifier())
        accepted = await exchange(gotrue, code, verifier)

        assert (refused.status_code, refused.json()) == (400, BAD_VERIFIER)
        assert accepted.status_code == 200

    async def test_another_users_verifier_does_not_open_this_users_code(self, gotrue, outbox):
        alice, bob = unique_email(), unique_email()
        alice_verifier, bob_verifier = new_verifier(), new_verifier()
        await gotrue.session(alice)
        await gotrue.session(bob)
        alice_code = await recovery_code(gotrue, outbox, alice, alice_verifier)
        bob_code = await recovery_code(gotrue, outbox, bob, bob_verifier)

        crossed = await exchange(gotrue, alice_code, bob_verifier)
        bobs = await exchange(gotrue, bob_code, bob_verifier)

        assert (crossed.status_code, crossed.json()) == (400, BAD_VERIFIER)
        assert bobs.json()["user"]["email"] == bob

    async def test_a_flow_state_over_five_minutes_old_is_expired(self, gotrue, outbox):
        """GoTrue's flow-state lifetime (300 s), counted from the request for a recovery."""
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)
        await age_flow_states(gotrue, 301)

        response = await exchange(gotrue, code, verifier)

        assert response.status_code == 422
        assert response.json() == {
            "code": "flow_state_expired",
            "message": "invalid flow state, flow state has expired",
        }

    async def test_a_magic_links_lifetime_counts_from_the_code(self, gotrue, outbox):
        """GoTrue `IsExpired`: a magic link's flow state from when its code was issued."""
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/otp", {"email": email, **pkce(verifier)})
        code = query((await follow(gotrue, mail.link)).headers["location"])["code"]
        await age_flow_states(gotrue, 301)  # created long ago, code just issued
        fresh = await exchange(gotrue, code, verifier)
        mail = await mailed(gotrue, outbox, "/otp", {"email": email, **pkce(verifier)})
        code = query((await follow(gotrue, mail.link)).headers["location"])["code"]
        await age_flow_states(gotrue, 301, column="auth_code_issued_at")

        stale = await exchange(gotrue, code, verifier)

        assert mail.query["type"] == "magiclink"
        assert fresh.status_code == 200, fresh.text
        assert (stale.status_code, stale.json()["code"]) == (422, "flow_state_expired")

    async def test_the_code_of_a_deleted_user_finds_nothing_even_for_a_new_one(
        self, gotrue, outbox
    ):
        """The code belongs to the user it was issued to: deleted, and the address signed up
        again, it opens neither."""
        email, verifier = unique_email(), new_verifier()
        first = await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)
        await gotrue.admin("DELETE", f"/users/{first['user']['id']}")
        await gotrue.session(email)

        response = await exchange(gotrue, code, verifier)

        assert (response.status_code, response.json()) == (404, NOT_FOUND)

    @pytest.mark.parametrize("by", ["user", "admin"])
    async def test_a_new_password_ends_a_recovery_code_issued_before_it(self, gotrue, outbox, by):
        """As it spends the reset and magic links: a code followed before the change (say, by
        whoever had the mailbox) opens no session after it."""
        email, verifier = unique_email(), new_verifier()
        session = await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)
        new_password = {"password": "a brand new passphrase 42"}

        if by == "user":
            changed = await gotrue.call(
                "PUT", "/user", bearer=session["access_token"], json=new_password
            )
        else:
            changed = await gotrue.admin(
                "PUT", f"/users/{session['user']['id']}", json=new_password
            )
        response = await exchange(gotrue, code, verifier)

        assert changed.status_code == 200, changed.text
        assert (response.status_code, response.json()) == (404, NOT_FOUND)

    async def test_a_new_password_spends_a_pending_email_change_link(self, gotrue, outbox):
        """A new password spends every outstanding token of the user, an email change's too (an
        intruder's pending change must not outlive the owner's new password): its PKCE link then
        issues no code."""
        session = await gotrue.session()
        new, verifier = unique_email(), new_verifier()
        await gotrue.call(
            "PUT", "/user", bearer=session["access_token"], json={"email": new, **pkce(verifier)}
        )
        (mail,) = await outbox_mails(outbox, new)
        await gotrue.call(
            "PUT",
            "/user",
            bearer=session["access_token"],
            json={"password": "a brand new passphrase 42"},
        )

        opened = await follow(gotrue, mail.link)

        redirected = query(opened.headers["location"])
        assert "code" not in redirected
        assert redirected["error_code"] == "otp_expired"

    async def test_a_code_is_stored_only_as_its_hash(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)

        (row,) = await flow_rows(gotrue)

        assert row.auth_code_hash == hashlib.sha256(code.encode()).hexdigest()
        assert code not in repr(tuple(row))
        assert verifier not in repr(tuple(row))

    @pytest.mark.parametrize(
        "body",
        [{}, {"auth_code": "a-code"}, {"code_verifier": "v" * 43},
         {"auth_code": "", "code_verifier": ""}, {"auth_code": None, "code_verifier": "v" * 43}],
    )  # fmt: skip
    async def test_a_missing_code_or_verifier_is_validation_failed(self, gotrue, body):
        response = await gotrue.call("POST", "/token", params={"grant_type": "pkce"}, json=body)

        assert response.status_code == 400
        assert response.json() == {
            "code": "validation_failed",
            "message": "invalid request: both auth code and code verifier should be non-empty",
        }

    @pytest.mark.parametrize(
        ("auth_code", "code_verifier", "status", "code"),
        [
            (5, "v" * 43, 400, "validation_failed"),
            ({"$ne": None}, "v" * 43, 400, "validation_failed"),
            (["a"], "v" * 43, 400, "validation_failed"),
            ("a-code", 1.5, 400, "validation_failed"),
            ("a-code", True, 400, "validation_failed"),
            ("a\x00code", "v" * 43, 400, "validation_failed"),
            ("x" * 20_000, "v" * 43, 404, "flow_state_not_found"),
            ("a-code", "v" * 20_000, 404, "flow_state_not_found"),
            ("' OR 1=1 --", "v", 404, "flow_state_not_found"),
            ("\U0001f600" * 50, "\u202e" * 50, 404, "flow_state_not_found"),
            (NIL_UUID, NIL_UUID, 404, "flow_state_not_found"),
        ],
    )  # fmt: skip
    async def test_garbage_is_a_gotrue_error_never_a_5xx(
        self, gotrue, auth_code, code_verifier, status, code
    ):
        response = await exchange(gotrue, auth_code, code_verifier)

        assert (response.status_code, response.json()["code"]) == (status, code)

    @pytest.mark.parametrize("number", ["NaN", "Infinity", "-1e999"])
    async def test_a_non_finite_number_in_the_body_is_bad_json(self, gotrue, number):
        response = await gotrue.call(
            "POST",
            "/token",
            params={"grant_type": "pkce"},
            content=f'{{"auth_code": {number}, "code_verifier": "{"v" * 43}"}}'.encode(),
            headers={"Content-Type": "application/json"},
        )

        assert (response.status_code, response.json()["code"]) == (400, "bad_json")

    async def test_exchanges_count_against_the_refresh_limit(self, make_gotrue):
        gotrue = await make_gotrue(rate_limit_refresh_per_address="3/minute")

        statuses = [(await exchange(gotrue, f"code-{n}", "v" * 43)).status_code for n in range(4)]
        limited = await exchange(gotrue, "another", "v" * 43)

        assert statuses == [404, 404, 404, 429]
        assert limited.json()["code"] == "over_request_rate_limit"
        assert int(limited.headers["Retry-After"]) >= 1


class TestPkceSecrets:
    async def test_no_code_verifier_or_challenge_reaches_a_log_line(self, gotrue, outbox, caplog):
        """Nor the link's token: the whole flow, a refusal included, logged at DEBUG."""
        caplog.set_level(logging.DEBUG)
        email, verifier = unique_email(), new_verifier()
        session = await gotrue.session(email)
        mail = await mailed(gotrue, outbox, "/recover", {"email": email, **pkce(verifier)})
        code = query((await follow(gotrue, mail.link)).headers["location"])["code"]

        await exchange(gotrue, code, "w" * 43)
        await exchange(gotrue, code, verifier)
        await exchange(gotrue, code, verifier)
        logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)

        (event,) = security_events(caplog, "pkce_verifier_mismatch")

        for secret in (code, verifier, s256(verifier), mail.token):
            assert secret not in logged
        assert (event.__dict__["user_id"], event.__dict__["reason"]) == (
            session["user"]["id"],
            "bad_code_verifier",
        )

    def test_redaction_covers_the_pkce_parameters(self):
        line = (
            "GET /callback?code=SECRET1&next=%2F 303 Location: https://site/?code=SECRET2#sb= "
            '{"auth_code": "SECRET3", "code_verifier": "SECRET4", "code_challenge": "SECRET5"} '
            "error_code=otp_expired"
        )

        redacted = redact(line)

        assert "SECRET" not in redacted
        assert "error_code=otp_expired" in redacted

    async def test_no_error_body_echoes_a_secret(self, gotrue, outbox):
        email, verifier = unique_email(), new_verifier()
        await gotrue.session(email)
        code = await recovery_code(gotrue, outbox, email, verifier)
        wrong = new_verifier()

        answers = [
            await exchange(gotrue, code, wrong),
            await gotrue.call(
                "POST",
                "/recover",
                json={
                    "email": email,
                    "code_challenge": wrong + "!",
                    "code_challenge_method": "s256",
                },
            ),
            await gotrue.call(
                "POST",
                "/recover",
                json={
                    "email": email,
                    "code_challenge": s256(wrong),
                    "code_challenge_method": wrong,
                },
            ),
        ]

        for answer in answers:
            assert answer.status_code == 400
            assert wrong not in answer.text
            assert code not in answer.text
