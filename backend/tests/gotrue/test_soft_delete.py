"""GoTrue's soft delete (`DELETE /admin/users/{id} {should_soft_delete: true}`) and the stored
`invited_at`, on SQLite and PostgreSQL.

GoTrue's source: `internal/api/admin.go` `adminUserDelete` (soft: `SoftDeleteUser`,
`SoftDeleteUserIdentities`, sessions deleted; again: a no-op), `internal/models/user.go`
(`SoftDeleteUser`: email obfuscated with `obfuscateValue`, no password, tokens cleared, both
metadata emptied, `Logout`), `internal/api/mail.go` (`invited_at` set by `/invite` and by an
invite link).
"""

from __future__ import annotations

import base64
import hashlib

import sqlalchemy as sa

from backend.app.db.tables import items, user_profile
from backend.tests.gotrue.conftest import GoTrue
from backend.tests.gotrue.mails import count_outbox
from backend.tests.gotrue_server import SERVICE_ROLE_KEY
from backend.tests.helpers import PASSWORD, AuthApi, unique_email


def _code(response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def _go_obfuscated(user_id: str, value: str) -> str:
    """GoTrue's `obfuscateValue`, written out again here so the test does not trust the code."""
    digest = hashlib.sha256((user_id + value).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _soft_delete(gotrue: GoTrue, user_id: str):
    return await gotrue.admin("DELETE", f"/users/{user_id}", json={"should_soft_delete": True})


class TestSoftDelete:
    async def test_the_row_stays_with_its_address_obfuscated_and_deleted_at_set(self, gotrue):
        session = await gotrue.session(data={"display_name": "Ada"})
        user = session["user"]
        await gotrue.admin("PUT", f"/users/{user['id']}", json={"app_metadata": {"plan": "pro"}})

        response = await _soft_delete(gotrue, user["id"])
        after = (await gotrue.admin("GET", f"/users/{user['id']}")).json()

        assert (response.status_code, response.json()) == (200, {})
        assert after["email"] == _go_obfuscated(user["id"], user["email"])
        assert "deleted_at" in after
        assert after["user_metadata"] == {}
        assert after["app_metadata"] == {}
        assert after["identities"][0]["identity_data"] == {}
        assert user["email"] not in str(after)

    async def test_the_user_no_longer_signs_in_and_every_session_ends(self, gotrue):
        session = await gotrue.session()
        email, user_id = session["user"]["email"], session["user"]["id"]

        await _soft_delete(gotrue, user_id)
        api = AuthApi(gotrue.client)

        assert _code(await gotrue.sign_in(email)) == (400, "invalid_credentials")
        assert _code(await gotrue.refresh(session["refresh_token"])) == (
            400,
            "refresh_token_not_found",
        )
        assert _code(await gotrue.call("GET", "/user", bearer=session["access_token"])) == (
            403,
            "session_not_found",
        )
        assert _code(await api.signin(email)) == (401, "auth_invalid_credentials")
        me = await gotrue.client.get(
            "/auth/me", headers={"Authorization": f"Bearer {session['access_token']}"}
        )
        assert me.status_code == 401

    async def test_the_address_is_free_for_a_new_sign_up(self, gotrue):
        session = await gotrue.session()
        email = session["user"]["email"]

        await _soft_delete(gotrue, session["user"]["id"])
        again = await gotrue.signup(email)

        assert again.status_code == 200, again.text
        assert again.json()["user"]["id"] != session["user"]["id"]
        assert (await gotrue.sign_in(email)).status_code == 200

    async def test_an_outstanding_link_is_spent(self, gotrue):
        email = unique_email()
        created = await gotrue.admin(
            "POST", "/users", json={"email": email, "password": PASSWORD, "email_confirm": True}
        )
        link = await gotrue.admin(
            "POST", "/generate_link", json={"type": "recovery", "email": email}
        )

        await _soft_delete(gotrue, created.json()["id"])
        verified = await gotrue.call(
            "POST", "/verify", json={"type": "recovery", "token_hash": link.json()["hashed_token"]}
        )

        assert _code(verified) == (403, "otp_expired")

    async def test_again_is_a_no_op_and_an_unknown_user_is_404(self, gotrue):
        session = await gotrue.session()
        user_id = session["user"]["id"]
        await _soft_delete(gotrue, user_id)
        first = (await gotrue.admin("GET", f"/users/{user_id}")).json()

        again = await _soft_delete(gotrue, user_id)
        unknown = await _soft_delete(gotrue, "00000000-0000-4000-8000-000000000000")

        assert (again.status_code, again.json()) == (200, {})
        assert (await gotrue.admin("GET", f"/users/{user_id}")).json() == first
        assert _code(unknown) == (404, "user_not_found")

    async def test_the_apps_own_rows_stay_and_a_hard_delete_still_removes_all(self, gotrue):
        """GoTrue leaves the app's tables alone on a soft delete: the id they name still exists."""
        session = await gotrue.session(data={"display_name": "Ada"})
        user_id = session["user"]["id"]
        bearer = {"Authorization": f"Bearer {session['access_token']}"}
        assert (await gotrue.client.post("/items", json={"title": "x"}, headers=bearer)).is_success
        database = gotrue.app.state.services.database

        def count(conn: sa.Connection) -> list[int]:
            return [
                conn.execute(
                    sa.select(sa.func.count()).select_from(table).where(column == user_id)
                ).scalar()
                or 0
                for table, column in ((items, items.c.user_id), (user_profile, user_profile.c.id))
            ]

        await _soft_delete(gotrue, user_id)
        kept = await database.read(count)
        hard = await gotrue.admin("DELETE", f"/users/{user_id}")
        gone = await database.read(count)

        assert kept == [1, 1]
        assert hard.status_code == 200
        assert gone == [0, 0]


class TestInvitedAt:
    async def test_an_invitation_stores_invited_at(self, gotrue):
        email = unique_email()

        invited = await gotrue.call(
            "POST", "/invite", key=SERVICE_ROLE_KEY, bearer=SERVICE_ROLE_KEY, json={"email": email}
        )
        read = await gotrue.admin("GET", f"/users/{invited.json()['id']}")
        listed = await gotrue.admin("GET", "/users")

        assert invited.status_code == 200, invited.text
        assert read.json()["invited_at"] == invited.json()["invited_at"]
        assert invited.json()["confirmation_sent_at"] == invited.json()["invited_at"]
        assert [u["invited_at"] for u in listed.json()["users"] if u["email"] == email] == [
            invited.json()["invited_at"]
        ]

    async def test_an_invite_link_stores_invited_at_and_a_sign_up_has_none(self, gotrue, tmp_path):
        email = unique_email()
        signed_up = await gotrue.session()

        link = await gotrue.admin("POST", "/generate_link", json={"type": "invite", "email": email})
        read = await gotrue.admin("GET", f"/users/{link.json()['id']}")

        assert link.status_code == 200, link.text
        assert "invited_at" in link.json()
        assert read.json()["invited_at"] == link.json()["invited_at"]
        assert "invited_at" not in signed_up["user"]
        assert count_outbox(tmp_path / "data" / "outbox", email) == 0  # a link, not a mail
