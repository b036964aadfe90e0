"""GET /auth/sessions, DELETE /auth/sessions/{id}, POST /auth/logout with a scope (DESIGN §12)."""

from __future__ import annotations

import uuid

from backend.tests.helpers import PASSWORD, AuthApi


async def _second_device(api: AuthApi, email: str) -> tuple[AuthApi, str]:
    """Another browser on the same app, signed in as `email`; returns it and its access token."""
    other = AuthApi(type(api.client)(transport=api.client._transport, base_url="http://testserver"))
    signin = await other.signin(email, PASSWORD)
    assert signin.status_code == 200, signin.text
    return other, signin.json()["accessToken"]


class TestListSessions:
    async def test_list_shows_live_sessions_newest_first_with_current_flag(self, api, user):
        """Two sign-ins: both listed, the newer first, only the caller's marked current."""
        other, _other_token = await _second_device(api, user.email)

        response = await api.client.get("/auth/sessions", headers=user.auth)

        assert response.status_code == 200, response.text
        sessions = response.json()["sessions"]
        assert len(sessions) == 2
        assert [s["current"] for s in sessions] == [False, True]
        assert set(sessions[0]) == {"id", "createdAt", "lastActiveAt", "userAgent", "current"}
        await other.client.aclose()

    async def test_list_without_token_is_401(self, api):
        """No bearer: 401 unauthorized."""
        response = await api.client.get("/auth/sessions")

        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"

    async def test_list_leaves_out_ended_sessions(self, api, user):
        """A signed-out session is not listed."""
        other, _ = await _second_device(api, user.email)
        assert (await other.logout()).status_code == 200

        response = await api.client.get("/auth/sessions", headers=user.auth)

        assert [s["current"] for s in response.json()["sessions"]] == [True]
        await other.client.aclose()


class TestEndSession:
    async def test_ending_a_session_stops_its_refresh_and_me_at_once(self, api, user):
        """DELETE: 204; the ended session's refresh is 401 and /auth/me refuses its token."""
        other, other_token = await _second_device(api, user.email)
        listed = (await api.client.get("/auth/sessions", headers=user.auth)).json()["sessions"]
        other_id = next(s["id"] for s in listed if not s["current"])

        response = await api.client.delete(f"/auth/sessions/{other_id}", headers=user.auth)

        assert response.status_code == 204
        assert (await other.refresh()).json()["code"] == "refresh_token_invalid"
        me = await other.client.get("/auth/me", headers={"Authorization": f"Bearer {other_token}"})
        assert me.status_code == 401
        assert (await api.client.get("/auth/me", headers=user.auth)).status_code == 200
        await other.client.aclose()

    async def test_ending_an_unknown_or_ended_session_is_404(self, api, user):
        """Unknown id, a non-UUID id, and the same id twice: 404 not_found."""
        listed = (await api.client.get("/auth/sessions", headers=user.auth)).json()["sessions"]
        other_id = uuid.uuid4()

        unknown = await api.client.delete(f"/auth/sessions/{other_id}", headers=user.auth)
        garbage = await api.client.delete("/auth/sessions/not-a-uuid", headers=user.auth)
        first = await api.client.delete(f"/auth/sessions/{listed[0]['id']}", headers=user.auth)

        assert unknown.status_code == 404
        assert unknown.json()["code"] == "not_found"
        assert garbage.status_code == 404
        assert first.status_code == 204  # its own session: allowed, and now it is over
        assert (await api.client.get("/auth/me", headers=user.auth)).status_code == 401

    async def test_another_users_session_is_404_and_stays_alive(self, api, user):
        """Alice cannot end Bob's session, nor learn it exists."""
        bob = AuthApi(
            type(api.client)(transport=api.client._transport, base_url="http://testserver")
        )
        bob_user = await bob.signed_in_user()
        bob_sessions = await bob.client.get("/auth/sessions", headers=bob_user.auth)
        bob_id = bob_sessions.json()["sessions"][0]["id"]

        response = await api.client.delete(f"/auth/sessions/{bob_id}", headers=user.auth)

        assert response.status_code == 404
        assert (await bob.client.get("/auth/me", headers=bob_user.auth)).status_code == 200
        await bob.client.aclose()


class TestLogoutScope:
    async def test_others_keeps_this_session_and_ends_the_rest(self, api, user):
        """scope=others: this cookie still refreshes; the other device's is refused."""
        other, _other_token = await _second_device(api, user.email)

        response = await api.logout(json={"scope": "others"})

        assert response.status_code == 200
        assert (await api.refresh()).status_code == 200
        assert (await other.refresh()).json()["code"] == "refresh_token_invalid"
        await other.client.aclose()

    async def test_global_ends_every_session(self, api, user):
        """scope=global: both devices are signed out, and this cookie is cleared."""
        other, _ = await _second_device(api, user.email)

        response = await api.logout(json={"scope": "global"})

        assert response.status_code == 200
        assert api.refresh_cookie is None
        assert (await other.refresh()).json()["code"] == "refresh_token_invalid"
        await other.client.aclose()

    async def test_unknown_scope_is_422(self, api, user):
        """A scope outside local/others/global: 422 validation_error, nothing ended."""
        response = await api.logout(json={"scope": "everyone"})

        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert (await api.client.get("/auth/me", headers=user.auth)).status_code == 200


class TestUserAgent:
    """The session list names each session's browser by the User-Agent of the request that
    opened it: bounded to 256 characters, control characters dropped."""

    async def _listed_agents(self, api: AuthApi, email: str, user_agent: str) -> list[str | None]:
        other = AuthApi(
            type(api.client)(transport=api.client._transport, base_url="http://testserver")
        )
        await other.fetch_csrf()
        signin = await other.post(
            "/auth/signin",
            {"email": email, "password": PASSWORD},
            headers={"User-Agent": user_agent},
        )
        assert signin.status_code == 200, signin.text
        token = signin.json()["accessToken"]
        listed = await other.client.get(
            "/auth/sessions", headers={"Authorization": f"Bearer {token}"}
        )
        await other.client.aclose()
        assert listed.status_code == 200, listed.text
        return [s["userAgent"] for s in listed.json()["sessions"] if s["current"]]

    async def test_sign_in_records_the_user_agent(self, api, user):
        """A sign-in with a User-Agent: the list shows it on that session."""
        agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"

        assert await self._listed_agents(api, user.email, agent) == [agent]

    async def test_an_over_long_user_agent_is_cut(self, api, user):
        """A 2000-character User-Agent is kept to its first 256 characters."""
        agent = "Agent/" + "x" * 2000

        assert await self._listed_agents(api, user.email, agent) == [agent[:256]]

    async def test_control_characters_are_dropped(self, api, user):
        """A tab (the only control character a header may carry) and DEL are not kept."""
        assert await self._listed_agents(api, user.email, "Curl/8\t0\x7f") == ["Curl/80"]
