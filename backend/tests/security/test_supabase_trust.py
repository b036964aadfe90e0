"""Attacks on the supabase provider through what a user may write at GoTrue itself.

A signed-in user holds the public anon key and their own access token, so they can call GoTrue
directly (`PUT /auth/v1/user`, `POST /auth/v1/signup`) and write any user metadata they like.
The app must treat that metadata as data: never as the address it reports, never as a name
that breaks its own profile table. The app's database is SQLite and PostgreSQL in turn; GoTrue
(the stand-in) keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.tests.gotrue_server import ANON_KEY, gotrue_server
from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from backend.tests.identity.test_supabase import supabase_api


@pytest.fixture
def project(make_settings, tmp_path: Path) -> Iterator[str]:
    with gotrue_server(make_settings, database_url=f"sqlite:///{tmp_path / 'gotrue.db'}") as url:
        yield url


def _gotrue(project: str, access_token: str | None = None) -> httpx.Client:
    bearer = access_token or ANON_KEY
    return httpx.Client(
        base_url=f"{project}/auth/v1",
        headers={"apikey": ANON_KEY, "Authorization": f"Bearer {bearer}"},
    )


async def _me(api: AuthApi, signed_in: httpx.Response) -> httpx.Response:
    token = signed_in.json()["accessToken"]
    return await api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


class TestMetadataIsNotIdentity:
    async def test_an_address_written_into_the_metadata_is_never_reported(
        self, make_settings, project
    ):
        email = unique_email()
        async with supabase_api(make_settings, project) as api:
            assert (await api.signup(email)).status_code == 201
            signed_in = await api.signin(email)
            with _gotrue(project, signed_in.json()["accessToken"]) as gotrue:
                written = gotrue.put(
                    "/user", json={"data": {"email_as_typed": "ceo@myideas.example"}}
                )
            assert written.status_code == 200  # GoTrue stores the data as given

            me = await _me(api, signed_in)
            again = await api.signin(email)
            refreshed = await api.refresh()

        for response in (me, again, refreshed):
            assert response.status_code == 200, response.text
            assert response.json()["user"]["email"] == email

    async def test_the_spelling_typed_at_sign_up_is_kept(self, make_settings, project):
        """The metadata may carry the case the user typed, as long as it is the same address."""
        email = "Ada.Lovelace." + unique_email()
        async with supabase_api(make_settings, project) as api:
            assert (await api.signup(email)).status_code == 201
            signed_in = await api.signin(email)

        assert signed_in.json()["user"]["email"] == email

    async def test_an_account_made_at_gotrue_with_a_spoofed_address_reports_its_own(
        self, make_settings, project
    ):
        email = unique_email()
        with _gotrue(project) as gotrue:
            made = gotrue.post(
                "/signup",
                json={
                    "email": email,
                    "password": PASSWORD,
                    "data": {"email_as_typed": "ceo@myideas.example"},
                },
            )
        assert made.status_code == 200, made.text
        async with supabase_api(make_settings, project) as api:
            signed_in = await api.signin(email)

        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user"]["email"] == email


class TestNamesFromGoTrue:
    @pytest.mark.parametrize(
        "display_name", ["n" * 5000, "   ", {"nested": "object"}], ids=["long", "blank", "object"]
    )
    async def test_a_name_that_does_not_fit_the_profile_is_dropped_not_a_500(
        self, make_settings, project, display_name
    ):
        email = unique_email()
        with _gotrue(project) as gotrue:
            made = gotrue.post(
                "/signup",
                json={"email": email, "password": PASSWORD, "data": {"display_name": display_name}},
            )
        assert made.status_code == 200, made.text
        async with supabase_api(make_settings, project) as api:
            signed_in = await api.signin(email)
            me = await _me(api, signed_in)

        assert signed_in.status_code == 200, signed_in.text
        assert me.status_code == 200, me.text
        assert me.json()["user"]["profile"] == {"displayName": None}
