"""One user store for /auth and /auth/v1: accounts, sessions and tokens work across both."""

from __future__ import annotations

from backend.tests.helpers import PASSWORD, AuthApi, unique_email


class TestOneUserStore:
    async def test_user_of_auth_signs_in_through_gotrue_with_its_name_as_metadata(self, gotrue):
        api = AuthApi(gotrue.client)
        email = unique_email()
        assert (await api.signup(email, display_name="Ada")).status_code == 201

        response = await gotrue.sign_in(email)

        assert response.status_code == 200
        assert response.json()["user"]["user_metadata"] == {"display_name": "Ada"}

    async def test_user_of_gotrue_signs_in_through_auth_with_its_profile(self, gotrue):
        email = unique_email()
        await gotrue.session(email, data={"display_name": "Grace"})
        api = AuthApi(gotrue.client)

        signin = await api.signin(email)
        me = await gotrue.client.get(
            "/auth/me", headers={"Authorization": f"Bearer {signin.json()['accessToken']}"}
        )

        assert signin.status_code == 200
        assert me.json()["user"]["profile"] == {"displayName": "Grace"}

    async def test_gotrue_token_works_on_auth_me_and_items(self, gotrue):
        session = await gotrue.session()
        bearer = {"Authorization": f"Bearer {session['access_token']}"}

        me = await gotrue.client.get("/auth/me", headers=bearer)
        created = await gotrue.client.post("/items", json={"title": "An idea"}, headers=bearer)
        listed = await gotrue.client.get("/items", headers=bearer)

        assert me.status_code == 200
        assert me.json()["user"]["id"] == session["user"]["id"]
        assert created.status_code == 201
        assert [item["title"] for item in listed.json()["items"]] == ["An idea"]

    async def test_auth_token_works_on_gotrue_user(self, gotrue):
        api = AuthApi(gotrue.client)
        user = await api.signed_in_user()

        response = await gotrue.call("GET", "/user", bearer=user.access_token)

        assert response.status_code == 200
        assert response.json()["id"] == user.id

    async def test_gotrue_logout_ends_the_session_for_auth_me_too(self, gotrue):
        session = await gotrue.session()
        await gotrue.call("POST", "/logout", bearer=session["access_token"])

        me = await gotrue.client.get(
            "/auth/me", headers={"Authorization": f"Bearer {session['access_token']}"}
        )

        assert me.status_code == 401

    async def test_gotrue_sign_up_and_sign_in_record_the_user_agent_for_auth_sessions(self, gotrue):
        """Sessions opened through /auth/v1 name their browser in GET /auth/sessions too."""
        email = unique_email()
        signup = await gotrue.call(
            "POST",
            "/signup",
            json={"email": email, "password": PASSWORD},
            headers={"User-Agent": "supabase-js-web/2.0 (sign-up)"},
        )
        signin = await gotrue.sign_in(email, headers={"User-Agent": "supabase-js-web/2.0"})
        assert (signup.status_code, signin.status_code) == (200, 200)

        bearer = {"Authorization": f"Bearer {signin.json()['access_token']}"}
        listed = (await gotrue.client.get("/auth/sessions", headers=bearer)).json()["sessions"]

        assert [s["userAgent"] for s in listed] == [
            "supabase-js-web/2.0",
            "supabase-js-web/2.0 (sign-up)",
        ]
