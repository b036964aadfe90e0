"""GoTrue's bans: `ban_duration` on the admin API and every refusal of a banned user, on GoTrue's
API and on `/auth` (embedded provider), on SQLite and PostgreSQL.

GoTrue's source for each behaviour: `internal/api/admin.go` (`ban_duration`, Go's
`time.ParseDuration`, "invalid format for ban duration: …"), `internal/models/user.go` (`Ban`,
`IsBanned`), `internal/api/token.go` (password grant: 400 before the password check),
`internal/tokens/service.go` (refresh grant: 400 "Invalid Refresh Token: User Banned", before
rotation), `internal/api/verify.go` (403), `internal/api/auth.go` (`requireAuthentication`: 403).
The supabase provider's side is `backend/tests/identity/test_bans.py`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from backend.app.db.tables import identity_users
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.helpers import PASSWORD, AuthApi, unique_email

SECURITY_LOGGER = "backend.app.security"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _user(gotrue: GoTrue, **body: Any) -> dict[str, Any]:
    body = {"email": unique_email(), "password": PASSWORD, "email_confirm": True, **body}
    response = await gotrue.admin("POST", "/users", json=body)
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()
    return user


async def _ban(gotrue: GoTrue, user_id: str, duration: str) -> dict[str, Any]:
    response = await gotrue.admin("PUT", f"/users/{user_id}", json={"ban_duration": duration})
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()
    return user


def _error(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["code"], body["message"]


async def _set_banned_until(gotrue: GoTrue, user_id: str, value: datetime) -> None:
    def write(conn: sa.Connection) -> None:
        conn.execute(
            identity_users.update().where(identity_users.c.id == user_id).values(banned_until=value)
        )

    await gotrue.app.state.services.database.write(write)


class TestBanDuration:
    async def test_a_duration_sets_banned_until_in_the_user_json(self, gotrue):
        """`ban_duration: "24h"` bans until now + 24 h, shown as `banned_until` on every read."""
        user = await _user(gotrue)

        before = datetime.now(UTC)
        banned = await _ban(gotrue, user["id"], "24h")
        read = (await gotrue.admin("GET", f"/users/{user['id']}")).json()

        assert "banned_until" not in user
        until = _at(banned["banned_until"])
        assert before + timedelta(hours=24) <= until <= datetime.now(UTC) + timedelta(hours=24)
        assert read["banned_until"] == banned["banned_until"]

    async def test_a_compound_duration_on_create_bans_the_new_user(self, gotrue):
        """`POST /admin/users` takes `ban_duration` too ("1h30m" is Go's notation)."""
        before = datetime.now(UTC)
        user = await _user(gotrue, ban_duration="1h30m")

        signed_in = await gotrue.sign_in(user["email"])

        until = _at(user["banned_until"])
        assert before + timedelta(minutes=90) <= until <= datetime.now(UTC) + timedelta(minutes=90)
        assert _error(signed_in) == (400, "user_banned", "User is banned")

    @pytest.mark.parametrize(
        ("duration", "go_error"),
        [
            ("24", 'time: missing unit in duration "24"'),
            ("1d", 'time: unknown unit "d" in duration "1d"'),
            ("1e999h", 'time: unknown unit "e" in duration "1e999h"'),
            ("NaN", 'time: invalid duration "NaN"'),
            ("-", 'time: invalid duration "-"'),
            ("..5s", 'time: invalid duration "..5s"'),
            ("9999999999999999999h", 'time: invalid duration "9999999999999999999h"'),
            ("2562048h", 'time: invalid duration "2562048h"'),  # past 2^63 ns
            ("9" * 5000 + "h", f'time: invalid duration "{"9" * 5000}h"'),
            ("\uff12\uff14h", r'time: invalid duration "\xef\xbc\x92\xef\xbc\x94h"'),  # fullwidth
            ("٢٤h", r'time: invalid duration "\xd9\xa2\xd9\xa4h"'),  # Arabic-Indic digits
            ("1h 2m", 'time: unknown unit "h " in duration "1h 2m"'),
        ],
    )
    async def test_an_invalid_duration_is_gotrues_400_and_changes_nothing(
        self, gotrue, duration, go_error
    ):
        """Go's own error text after GoTrue's prefix; never a 5xx, nothing written."""
        user = await _user(gotrue)

        response = await gotrue.admin(
            "PUT", f"/users/{user['id']}", json={"ban_duration": duration}
        )
        created = await gotrue.admin(
            "POST", "/users", json={"email": unique_email(), "ban_duration": duration}
        )

        assert _error(response) == (
            400,
            "validation_failed",
            f"invalid format for ban duration: {go_error}",
        )
        assert created.status_code == 400
        assert (await gotrue.sign_in(user["email"])).status_code == 200

    @pytest.mark.parametrize("value", [24, 1.5, True, ["24h"], {"h": 24}])
    async def test_a_duration_that_is_not_a_string_is_400(self, gotrue, value):
        user = await _user(gotrue)

        response = await gotrue.admin("PUT", f"/users/{user['id']}", json={"ban_duration": value})

        assert response.status_code == 400
        assert (await gotrue.sign_in(user["email"])).status_code == 200

    @pytest.mark.parametrize("duration", ["-1h", "-2562047h"])
    async def test_a_negative_duration_sets_banned_until_in_the_past_which_bans_nobody(
        self, gotrue, duration
    ):
        """Go parses "-1h"; GoTrue's `Ban` stores now - 1 h, and `IsBanned` is false."""
        user = await _user(gotrue)

        banned = await _ban(gotrue, user["id"], duration)

        assert _at(banned["banned_until"]) < datetime.now(UTC)
        assert (await gotrue.sign_in(user["email"])).status_code == 200

    @pytest.mark.parametrize("lift", ["none", "0", "0s"])
    async def test_none_or_zero_lifts_the_ban(self, gotrue, lift):
        """ "none" is a zero duration, and a zero duration sets `banned_until` to null."""
        user = await _user(gotrue)
        await _ban(gotrue, user["id"], "24h")

        lifted = await _ban(gotrue, user["id"], lift)

        assert "banned_until" not in lifted
        assert (await gotrue.sign_in(user["email"])).status_code == 200

    @pytest.mark.parametrize("body", [{}, {"ban_duration": ""}, {"ban_duration": None}])
    async def test_an_absent_or_empty_duration_leaves_the_ban(self, gotrue, body):
        user = await _user(gotrue)
        banned = await _ban(gotrue, user["id"], "24h")

        response = await gotrue.admin(
            "PUT", f"/users/{user['id']}", json={"user_metadata": {"x": 1}, **body}
        )

        assert response.json()["banned_until"] == banned["banned_until"]


class TestBannedOnGoTrueApi:
    async def test_password_grant_is_400_user_banned_before_the_password_is_checked(self, gotrue):
        """GoTrue's order (`token.go`): the ban is told even for a wrong password."""
        user = await _user(gotrue)
        await _ban(gotrue, user["id"], "24h")

        right = await gotrue.sign_in(user["email"])
        wrong = await gotrue.sign_in(user["email"], "not the password at all")
        unknown = await gotrue.sign_in(unique_email(), "not the password at all")

        assert _error(right) == (400, "user_banned", "User is banned")
        assert _error(wrong) == (400, "user_banned", "User is banned")
        assert _error(unknown)[:2] == (400, "invalid_credentials")

    async def test_legacy_body_names_the_code_too(self, gotrue):
        user = await _user(gotrue)
        await _ban(gotrue, user["id"], "24h")

        response = await gotrue.sign_in(user["email"], versioned=False)

        assert response.json() == {
            "code": 400,
            "error_code": "user_banned",
            "msg": "User is banned",
        }
        assert response.headers["x-sb-error-code"] == "user_banned"

    async def test_refresh_is_refused_while_banned_and_works_again_once_lifted(self, gotrue):
        """`tokens/service.go` checks the ban before it rotates: the token is not spent, and the
        session is not ended by the ban."""
        session = await gotrue.session()
        user_id, refresh_token = session["user"]["id"], session["refresh_token"]
        await _ban(gotrue, user_id, "24h")

        refused = await gotrue.refresh(refresh_token)
        await _ban(gotrue, user_id, "none")
        again = await gotrue.refresh(refresh_token)

        assert _error(refused) == (400, "user_banned", "Invalid Refresh Token: User Banned")
        assert again.status_code == 200, again.text

    async def test_a_token_from_before_the_ban_is_403_on_bearer_routes(self, gotrue):
        """`auth.go` `requireAuthentication`: every route behind it refuses the user."""
        session = await gotrue.session()
        token = session["access_token"]
        await _ban(gotrue, session["user"]["id"], "24h")

        answers = [
            await gotrue.call("GET", "/user", bearer=token),
            await gotrue.call("PUT", "/user", bearer=token, json={"data": {"x": 1}}),
            await gotrue.call("POST", "/logout", bearer=token),
            await gotrue.call("GET", "/reauthenticate", bearer=token),
        ]

        for answer in answers:
            assert _error(answer) == (403, "user_banned", "User is banned")

    async def test_verify_is_403_user_banned_and_the_link_is_not_spent(self, gotrue):
        """`verify.go`: the user of a good link is checked for a ban before anything is spent."""
        user = await _user(gotrue)
        link = await gotrue.admin(
            "POST", "/generate_link", json={"type": "recovery", "email": user["email"]}
        )
        token_hash = link.json()["hashed_token"]
        await _ban(gotrue, user["id"], "24h")

        refused = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": token_hash}
        )
        await _ban(gotrue, user["id"], "none")
        verified = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": token_hash}
        )

        assert _error(refused) == (403, "user_banned", "User is banned")
        assert verified.status_code == 200, verified.text

    async def test_a_mails_link_redirects_with_user_banned_in_the_fragment(self, gotrue):
        """`verify.go` `verifyGet`: the 403 goes into the fragment (`error=access_denied`)."""
        user = await _user(gotrue)
        link = await gotrue.admin(
            "POST", "/generate_link", json={"type": "recovery", "email": user["email"]}
        )
        await _ban(gotrue, user["id"], "24h")

        response = await gotrue.client.get(
            "/auth/v1/verify",
            params={"token": link.json()["hashed_token"], "type": "recovery"},
        )

        fragment = parse_qs(urlsplit(response.headers["location"]).fragment)
        assert response.status_code == 303
        assert fragment["error"] == ["access_denied"]
        assert fragment["error_code"] == ["user_banned"]
        assert fragment["error_description"] == ["User is banned"]

    async def test_a_ban_that_ran_out_refuses_nothing(self, gotrue):
        """`IsBanned` compares with now: a `banned_until` in the past is no ban."""
        session = await gotrue.session()
        user_id = session["user"]["id"]
        await _ban(gotrue, user_id, "24h")
        await _set_banned_until(gotrue, user_id, datetime.now(UTC) - timedelta(seconds=1))

        signed_in = await gotrue.sign_in(session["user"]["email"])
        refreshed = await gotrue.refresh(session["refresh_token"])
        user = await gotrue.call("GET", "/user", bearer=session["access_token"])

        assert signed_in.status_code == 200
        assert refreshed.status_code == 200
        assert user.status_code == 200

    async def test_a_short_ban_runs_out_by_itself(self, gotrue):
        user = await _user(gotrue)
        await _ban(gotrue, user["id"], "1s")

        during = await gotrue.sign_in(user["email"])
        await asyncio.sleep(1.1)
        after = await gotrue.sign_in(user["email"])

        assert during.status_code == 400
        assert after.status_code == 200


class TestBannedOnAuthApi:
    """`/auth` under the embedded provider: 403 `user_banned` in `{code, message, details}`."""

    async def _banned_user(self, gotrue: GoTrue) -> tuple[AuthApi, dict[str, Any], str]:
        api = AuthApi(gotrue.client)
        user = await api.signed_in_user()
        await _ban(gotrue, user.id, "24h")
        return api, {"id": user.id, "email": user.email}, user.access_token

    async def test_signin_with_the_right_password_is_403_user_banned(self, gotrue):
        api, user, _ = await self._banned_user(gotrue)

        response = await api.signin(user["email"])

        assert response.status_code == 403
        assert response.json() == {
            "code": "user_banned",
            "message": "This account is banned",
            "details": {},
        }
        assert "sb_refresh_token" not in response.headers.get("set-cookie", "")

    async def test_signin_with_a_wrong_password_is_still_invalid_credentials(self, gotrue):
        """No enumeration: the ban is told only to who knows the password."""
        api, user, _ = await self._banned_user(gotrue)

        wrong = await api.signin(user["email"], "not the password at all")
        unknown = await api.signin(unique_email(), "not the password at all")

        assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json())
        assert wrong.json()["code"] == "auth_invalid_credentials"

    async def test_refresh_is_403_user_banned_and_the_cookie_is_kept(self, gotrue):
        api, user, _ = await self._banned_user(gotrue)
        cookie = api.refresh_cookie

        refused = await api.refresh()

        assert (refused.status_code, refused.json()["code"]) == (403, "user_banned")
        assert api.refresh_cookie == cookie
        await _ban(gotrue, user["id"], "none")
        assert (await api.refresh()).status_code == 200

    async def test_me_and_the_lifecycle_bearer_routes_are_403_user_banned(self, gotrue):
        api, _, token = await self._banned_user(gotrue)
        bearer = {"Authorization": f"Bearer {token}"}

        answers = [
            await api.client.get("/auth/me", headers=bearer),
            await api.client.get("/auth/sessions", headers=bearer),
            await api.client.post(
                "/auth/password",
                headers=bearer,
                json={"currentPassword": PASSWORD, "newPassword": "another long passphrase"},
            ),
        ]

        for answer in answers:
            assert (answer.status_code, answer.json()["code"]) == (403, "user_banned"), answer.text

    async def test_unban_restores_signin_and_me(self, gotrue):
        api, user, token = await self._banned_user(gotrue)

        await _ban(gotrue, user["id"], "none")
        me = await api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        signin = await api.signin(user["email"])

        assert me.status_code == 200
        assert signin.status_code == 200

    async def test_a_ban_that_ran_out_refuses_nothing(self, gotrue):
        api, user, token = await self._banned_user(gotrue)
        await _set_banned_until(gotrue, user["id"], datetime.now(UTC) - timedelta(seconds=1))

        me = await api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        refreshed = await api.refresh()

        assert me.status_code == 200
        assert refreshed.status_code == 200


class TestBanLogs:
    async def test_a_ban_and_its_refusals_are_security_events_without_a_secret(
        self, gotrue, caplog
    ):
        api = AuthApi(gotrue.client)
        user = await api.signed_in_user()
        refresh_token = api.refresh_cookie or ""
        caplog.set_level(logging.INFO)

        await _ban(gotrue, user.id, "24h")
        await api.signin(user.email)
        await api.refresh()
        await _ban(gotrue, user.id, "none")

        events = [
            (record.event, getattr(record, "reason", None), getattr(record, "user_id", None))
            for record in caplog.records
            if record.name == SECURITY_LOGGER
        ]
        assert ("user_banned", "admin", user.id) in events
        assert ("signin_failed", "user_banned", None) in events
        assert ("refresh_refused", "user_banned", None) in events
        assert ("user_unbanned", "admin", user.id) in events
        logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
        assert refresh_token
        assert refresh_token not in logged
        assert user.access_token not in logged
        assert PASSWORD not in logged
