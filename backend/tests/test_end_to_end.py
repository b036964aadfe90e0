"""The seed flow over real HTTP: a real uvicorn on loopback and a real cookie jar."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie

import httpx
import pytest

from backend.app.main import create_app
from backend.tests.helpers import PASSWORD, unique_email
from backend.tests.live_server import live_server

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _cookie(response: httpx.Response, name: str) -> SimpleCookie:
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        if name in cookie:
            return cookie
    raise AssertionError(f"no Set-Cookie for {name}")


def run_seed_flow(base_url: str, secrets: list[str]) -> dict[str, httpx.Response]:
    """signup -> signin -> me -> refresh (as after a page reload) -> logout -> refresh fails."""
    responses: dict[str, httpx.Response] = {}
    email = unique_email()
    # A generous timeout: on a loaded 2-core CI machine a live server's first answer has taken
    # over httpx's default 5 s; the flow's assertions, not its speed, are what is tested.
    with httpx.Client(
        base_url=base_url, headers={"Origin": "http://localhost:5173"}, timeout=30
    ) as browser:
        csrf = browser.get("/auth/csrf").json()["csrfToken"]
        responses["signup"] = browser.post(
            "/auth/signup",
            json={"email": email, "password": PASSWORD, "profile": {"displayName": "Ada"}},
            headers={"X-CSRF-Token": csrf},
        )
        signin = responses["signin"] = browser.post(
            "/auth/signin",
            json={"email": email, "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        csrf, access_token = signin.json()["csrfToken"], signin.json()["accessToken"]
        first_refresh_token = browser.cookies["sb_refresh_token"]
        responses["me"] = browser.get(
            "/auth/me", headers={"Authorization": f"Bearer {access_token}"}
        )
        # A page reload forgets the access token; the cookie brings the session back.
        refresh = responses["refresh"] = browser.post(
            "/auth/refresh", headers={"X-CSRF-Token": csrf}
        )
        second_refresh_token = browser.cookies["sb_refresh_token"]
        csrf = refresh.json()["csrfToken"]  # bound to the rotated refresh cookie
        responses["me_after_reload"] = browser.get(
            "/auth/me", headers={"Authorization": f"Bearer {refresh.json()['accessToken']}"}
        )
        responses["logout"] = browser.post("/auth/logout", headers={"X-CSRF-Token": csrf})
        browser.cookies.set("sb_refresh_token", second_refresh_token, domain="127.0.0.1")
        responses["refresh_after_logout"] = browser.post(
            "/auth/refresh", headers={"X-CSRF-Token": csrf}
        )
        secrets += [PASSWORD, access_token, refresh.json()["accessToken"], csrf]
        secrets.append(signin.json()["csrfToken"])
        secrets += [first_refresh_token, second_refresh_token]
    return responses


class TestSeedFlow:
    def test_seed_flow_over_real_http(self, make_settings):
        """Every step answers as the README's contract says, with real Set-Cookie headers."""
        with live_server(create_app(make_settings())) as base_url:
            responses = run_seed_flow(base_url, [])

        assert responses["signup"].status_code == 201
        assert responses["signin"].status_code == 200
        assert responses["me"].json()["user"]["profile"] == {"displayName": "Ada"}
        assert responses["refresh"].status_code == 200
        assert responses["me_after_reload"].status_code == 200
        assert responses["logout"].json() == {"ok": True}
        assert responses["refresh_after_logout"].status_code == 401
        assert responses["refresh_after_logout"].json()["code"] == "refresh_token_invalid"

    def test_refresh_cookie_attributes_and_clear_match(self, make_settings):
        """Set: HttpOnly; SameSite=Lax; Path=/; Max-Age=session TTL. Clear: same, Max-Age=0."""
        with live_server(create_app(make_settings(session_ttl_seconds=3600))) as base_url:
            responses = run_seed_flow(base_url, [])

        set_cookie = _cookie(responses["signin"], "sb_refresh_token")["sb_refresh_token"]
        cleared = _cookie(responses["logout"], "sb_refresh_token")["sb_refresh_token"]
        for morsel, max_age in ((set_cookie, "3600"), (cleared, "0")):
            assert morsel["httponly"] is True
            assert morsel["samesite"] == "lax"
            assert morsel["path"] == "/"
            assert morsel["max-age"] == max_age
            assert not morsel["secure"]
            assert not morsel["domain"]

    def test_logs_of_the_seed_flow_contain_no_secret(self, make_settings, caplog):
        """Capture every log record of a full flow, at DEBUG, and search it for each secret."""
        secrets: list[str] = []
        caplog.set_level(logging.DEBUG)
        with live_server(create_app(make_settings()), log_level="debug") as base_url:
            logging.getLogger("probe").info("Authorization: Bearer abc.def.ghi cookie: sb=1")
            run_seed_flow(base_url, secrets)

        text = "\n".join(record.getMessage() for record in caplog.records)
        assert len(caplog.records) > 10  # the flow was logged (uvicorn access lines at least)
        assert "POST /auth/signin" in text
        assert "abc.def.ghi" not in text
        for secret in secrets:
            assert secret not in text
