"""CSRF and browser origin (ASVS 5.0 V3.5.1-V3.5.3; OWASP CSRF cheat sheet).

Every state-changing `/auth` route reads the refresh cookie, so every one needs a CSRF token that
matches the request's cookies (signed double submit, bound to the session once signed in), an
allowed `Origin` when one is sent, and no `Sec-Fetch-Site: cross-site`.
"""

from __future__ import annotations

import httpx
import pytest

from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from backend.tests.security.conftest import security_events

SPA = "http://localhost:5173"
ROUTES = ["/auth/signup", "/auth/signin", "/auth/refresh", "/auth/logout"]


@pytest.fixture
def database_url(tmp_path) -> str:
    """The checks run before any query: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'app.db'}"


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == code


async def attacker_pair(app) -> tuple[str, str]:
    """A CSRF cookie and its token, obtained by the attacker for himself from this API."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as attacker:
        token = (await attacker.get("/auth/csrf")).json()["csrfToken"]
        nonce = attacker.cookies["myideas_csrf"]
    return nonce, token


def plant_csrf_cookie(api: AuthApi, nonce: str) -> None:
    """Cookie tossing: a sibling subdomain overwrites the victim's CSRF cookie."""
    api.client.cookies.delete("myideas_csrf")
    api.client.cookies.set("myideas_csrf", nonce, domain="testserver.local")


class TestTokenChecks:
    """V3.5.1: a request passes only with a token that matches its own cookies."""

    @pytest.mark.parametrize("path", ROUTES)
    async def test_missing_header_is_refused(self, client, path):
        await client.get("/auth/csrf")

        assert_refused(await client.post(path, json={}), "csrf_missing")

    @pytest.mark.parametrize("path", ROUTES)
    async def test_missing_cookie_is_refused(self, app, path):
        _, token = await attacker_pair(app)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            response = await client.post(path, json={}, headers={"X-CSRF-Token": token})

        assert_refused(response, "csrf_missing")

    @pytest.mark.parametrize(
        "forged", ["forged", "", "A" * 43, "null", "undefined"], ids=lambda v: v[:8] or "empty"
    )
    async def test_forged_token_is_refused(self, api: AuthApi, forged):
        await api.fetch_csrf()

        response = await api.client.post(
            "/auth/logout", headers={"X-CSRF-Token": forged or " "}, json={}
        )

        assert response.status_code == 403
        assert response.json()["code"] in {"csrf_mismatch", "csrf_missing"}

    @pytest.mark.parametrize("path", ROUTES)
    async def test_token_of_another_cookie_is_refused(self, app, api: AuthApi, path):
        """A foreign token: valid for someone else's cookie, not for this one."""
        await api.fetch_csrf()
        _, foreign = await attacker_pair(app)
        api.csrf_token = foreign

        assert_refused(await api.post(path, {}), "csrf_mismatch")

    async def test_token_signed_by_another_instance_is_refused(self, make_app, api: AuthApi):
        other = await make_app(secret_key="another-instance-secret-" * 2)
        await api.fetch_csrf()
        nonce = api.client.cookies["myideas_csrf"]
        api.csrf_token = other.state.services.csrf.token_for(nonce)

        assert_refused(await api.post("/auth/logout"), "csrf_mismatch")

    async def test_a_refusal_is_a_security_event_with_the_address(self, client, caplog):
        await client.get("/auth/csrf")

        await client.post("/auth/logout", headers={"X-CSRF-Token": "forged"})

        [event] = security_events(caplog, "csrf_refused")
        assert event.reason == "csrf_mismatch"  # type: ignore[attr-defined]
        assert event.address == "127.0.0.1"  # type: ignore[attr-defined]


class TestSessionBinding:
    """OWASP's signed double submit: once signed in, the token is bound to the session."""

    async def test_planted_pair_stops_working_at_sign_in(self, app, api: AuthApi):
        """The attacker plants his own cookie and knows its token; after the victim signs in,
        planting it again does not let him sign the victim out (or refresh for her)."""
        nonce, token = await attacker_pair(app)
        plant_csrf_cookie(api, nonce)
        email = unique_email()
        await api.signup(email)
        assert (await api.signin(email)).status_code == 200

        plant_csrf_cookie(api, nonce)
        forged_logout = await api.client.post("/auth/logout", headers={"X-CSRF-Token": token})
        forged_refresh = await api.client.post("/auth/refresh", headers={"X-CSRF-Token": token})

        assert_refused(forged_logout, "csrf_mismatch")
        assert_refused(forged_refresh, "csrf_mismatch")

    async def test_the_pair_works_before_sign_in_and_the_session_survives_the_attempt(
        self, app, api: AuthApi
    ):
        """Control: the planted pair is a valid pair; only the binding stops it later."""
        nonce, token = await attacker_pair(app)
        plant_csrf_cookie(api, nonce)
        email = unique_email()
        signup = await api.client.post(
            "/auth/signup",
            json={"email": email, "password": PASSWORD},
            headers={"X-CSRF-Token": token},
        )
        await api.signin(email)
        plant_csrf_cookie(api, nonce)
        await api.client.post("/auth/logout", headers={"X-CSRF-Token": token})

        api.csrf_token = None  # the victim's client fetches the token of her cookies again
        assert signup.status_code == 201
        assert (await api.refresh()).status_code == 200

    async def test_a_pair_bound_to_the_attackers_own_session_is_refused(self, make_api, api):
        """Signing in himself gets the attacker a session-bound pair; it binds to his session."""
        attacker = await make_api()
        await attacker.signed_in_user()
        bound_cookie = attacker.client.cookies["myideas_csrf"]
        await api.signed_in_user()

        plant_csrf_cookie(api, bound_cookie)
        response = await api.client.post(
            "/auth/logout", headers={"X-CSRF-Token": attacker.csrf_token or ""}
        )

        assert_refused(response, "csrf_mismatch")

    async def test_get_csrf_never_binds_a_planted_nonce(self, app, api: AuthApi, user):
        """A sibling site plants its nonce and has the browser call GET /auth/csrf: the answer
        is a new nonce, so the attacker's token still does not pass."""
        nonce, token = await attacker_pair(app)
        plant_csrf_cookie(api, nonce)

        fresh = (await api.client.get("/auth/csrf")).json()["csrfToken"]
        forged = await api.client.post("/auth/logout", headers={"X-CSRF-Token": token})

        assert fresh != token
        assert_refused(forged, "csrf_mismatch")
        assert (
            await api.client.post("/auth/refresh", headers={"X-CSRF-Token": fresh})
        ).status_code == 200

    async def test_the_token_survives_a_refresh_so_other_tabs_keep_theirs(self, api: AuthApi, user):
        """The binding follows the rotating refresh cookie; the page's token does not change."""
        signin_token = api.csrf_token

        first = await api.refresh()
        second = await api.client.post(
            "/auth/refresh", headers={"X-CSRF-Token": signin_token or ""}
        )

        assert first.status_code == 200
        assert first.json()["csrfToken"] == signin_token
        assert second.status_code == 200, second.text

    async def test_a_csrf_cookie_bound_to_an_older_refresh_cookie_is_refused(
        self, api: AuthApi, user
    ):
        """The binding is checked against the refresh cookie the request carries."""
        old_csrf_cookie = api.client.cookies["myideas_csrf"]
        await api.refresh()

        plant_csrf_cookie(api, old_csrf_cookie)
        response = await api.client.post(
            "/auth/logout", headers={"X-CSRF-Token": api.csrf_token or ""}
        )

        assert_refused(response, "csrf_mismatch")


FOREIGN_ORIGINS = [
    "null",
    "https://evil.example",
    "http://localhost:5173.evil.example",  # suffix
    "http://evil.localhost:5173",  # prefix (a sibling host)
    "http://evillocalhost:5173",
    "https://localhost:5173",  # scheme
    "http://localhost:5174",  # port
    "http://localhost",
    "http://localhost:5173/",
    "HTTP://LOCALHOST:5173",
    "http://localhost:5173 ",
    "http://testserver.evil.example",  # suffix of the API's own origin
    "https://testserver",
    "http://localhost:5173, http://evil.example",
]


class TestOrigin:
    """V3.5.1/V3.5.2: a present Origin must be exactly an allowed one, on every route."""

    @pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
    @pytest.mark.parametrize("path", ROUTES)
    async def test_foreign_origin_is_refused_even_with_a_valid_token(
        self, api: AuthApi, path, origin
    ):
        response = await api.post(path, {}, headers={"Origin": origin})

        assert_refused(response, "origin_not_allowed")

    @pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
    async def test_foreign_origin_gets_no_csrf_token(self, client, origin):
        response = await client.get("/auth/csrf", headers={"Origin": origin})

        assert_refused(response, "origin_not_allowed")


class TestFetchMetadata:
    """V3.5.3: `Sec-Fetch-Site` says who started a request; another site may not."""

    @pytest.mark.parametrize("path", ROUTES)
    async def test_cross_site_is_refused_even_without_origin(self, api: AuthApi, path):
        response = await api.post(path, {}, headers={"Sec-Fetch-Site": "cross-site"})

        assert_refused(response, "origin_not_allowed")

    async def test_cross_site_is_refused_even_with_an_allowed_origin(self, api: AuthApi):
        response = await api.logout(headers={"Sec-Fetch-Site": "cross-site", "Origin": SPA})

        assert_refused(response, "origin_not_allowed")

    @pytest.mark.parametrize("origin", [None, "http://evil.localhost:5173"])
    async def test_same_site_needs_an_allowed_origin(self, api: AuthApi, origin):
        headers = {"Sec-Fetch-Site": "same-site"} | ({"Origin": origin} if origin else {})

        assert_refused(await api.logout(headers=headers), "origin_not_allowed")

    @pytest.mark.parametrize(
        ("site", "origin"),
        [("same-site", SPA), ("same-origin", "http://testserver"), ("none", None), (None, None)],
    )
    async def test_legitimate_requests_pass(self, api: AuthApi, site, origin):
        """The SPA (same-site, its origin allowed), /docs (same-origin), a non-browser client."""
        headers = {}
        if site:
            headers["Sec-Fetch-Site"] = site
        if origin:
            headers["Origin"] = origin

        response = await api.logout(headers=headers)

        assert response.status_code == 200, response.text
