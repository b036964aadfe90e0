"""The /auth contract (README, "The contract"): bodies, status codes and error codes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from backend.tests.helpers import PASSWORD, AuthApi, unique_email
from backend.tests.providers import both_identity_providers  # noqa: F401 -- both providers


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    return body


class TestCsrfEndpoint:
    async def test_csrf_get_returns_token_and_sets_httponly_cookie(self, client):
        """GET /auth/csrf hands out a token and keeps its counterpart in an HttpOnly cookie."""
        response = await client.get("/auth/csrf")

        assert response.status_code == 200
        assert response.json()["csrfToken"]
        assert "HttpOnly" in response.headers["set-cookie"]

    async def test_csrf_get_from_disallowed_origin_is_403(self, client):
        """A page on another origin cannot even ask for a token."""
        response = await client.get("/auth/csrf", headers={"Origin": "https://evil.example"})

        assert_error(response, 403, "origin_not_allowed")


STATE_CHANGING_ROUTES = ["/auth/signup", "/auth/signin", "/auth/refresh", "/auth/logout"]


class TestCsrfOnEveryStateChangingRoute:
    @pytest.mark.parametrize("path", STATE_CHANGING_ROUTES)
    async def test_no_token_is_403_csrf_missing(self, client, path):
        await client.get("/auth/csrf")  # the cookie alone is not enough

        response = await client.post(path, json={})

        body = assert_error(response, 403, "csrf_missing")
        assert body["details"]["missing"] == ["header"]

    @pytest.mark.parametrize("path", STATE_CHANGING_ROUTES)
    async def test_token_not_matching_cookie_is_403_csrf_mismatch(self, api: AuthApi, path):
        """A token from another session's cookie (or forged) does not pass."""
        await api.fetch_csrf()
        api.csrf_token = f"forged-{api.csrf_token}"

        assert_error(await api.post(path, {}), 403, "csrf_mismatch")

    @pytest.mark.parametrize("path", STATE_CHANGING_ROUTES)
    async def test_disallowed_origin_is_403_even_with_a_valid_token(self, api: AuthApi, path):
        response = await api.post(path, {}, headers={"Origin": "https://evil.example"})

        assert_error(response, 403, "origin_not_allowed")

    async def test_allowed_origin_with_valid_token_passes(self, api: AuthApi):
        response = await api.logout(headers={"Origin": "http://localhost:5173"})

        assert response.status_code == 200

    async def test_the_apis_own_origin_passes(self, api: AuthApi):
        """Same-origin calls, as from the OpenAPI page at /docs, are not cross-site."""
        response = await api.logout(headers={"Origin": "http://testserver"})

        assert response.status_code == 200


class TestSignUp:
    async def test_signup_creates_user_and_profile(self, api: AuthApi, client):
        """201 with the user; the profile's display name is readable after sign-in."""
        email = unique_email()

        response = await api.signup(email, display_name="Grace")

        assert response.status_code == 201
        assert response.json() == {"user": {"id": response.json()["user"]["id"], "email": email}}
        token = (await api.signin(email)).json()["accessToken"]
        me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["user"]["profile"] == {"displayName": "Grace"}

    async def test_signup_without_profile_has_null_display_name(self, api: AuthApi, client):
        """The profile row exists even when no profile was sent."""
        user = await api.signed_in_user(display_name=None)

        me = await client.get("/auth/me", headers=user.auth)

        assert me.json()["user"]["profile"] == {"displayName": None}

    async def test_signup_email_is_case_insensitive(self, api: AuthApi):
        """ADA@x and ada@x are one account."""
        email = unique_email()
        await api.signup(email)

        response = await api.signup(email.upper())

        assert_error(response, 409, "user_already_exists")

    async def test_signup_existing_email_is_409(self, api: AuthApi):
        email = unique_email()
        await api.signup(email)

        response = await api.signup(email)

        assert_error(response, 409, "user_already_exists")

    @pytest.mark.parametrize(
        ("password", "reason"),
        [("pw-1234", "too_short"), ("x" * 1025, "too_long"), ("", "too_short")],
    )
    async def test_signup_weak_password_is_422_with_reason(self, api: AuthApi, password, reason):
        """The reason is in details; the password is not."""
        response = await api.signup(unique_email(), password=password)

        body = assert_error(response, 422, "weak_password")
        assert body["details"]["reasons"] == [reason]
        if password:
            assert password not in response.text

    async def test_signup_passphrase_with_spaces_is_accepted(self, api: AuthApi):
        """No composition rules: a long passphrase is a good password."""
        response = await api.signup(unique_email(), password="my ideas are all mine")

        assert response.status_code == 201

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not-an-email", "password": PASSWORD},
            {"password": PASSWORD},
            {"email": "a@example.com"},
            {"email": "a@example.com", "password": PASSWORD, "profile": {"displayName": "x" * 101}},
        ],
    )
    async def test_signup_invalid_body_is_422_without_echo(self, api: AuthApi, body):
        response = await api.post("/auth/signup", body)

        assert_error(response, 422, "validation_error")
        assert PASSWORD not in response.text

    async def test_signup_without_csrf_is_403(self, client):
        response = await client.post(
            "/auth/signup", json={"email": unique_email(), "password": PASSWORD}
        )

        body = assert_error(response, 403, "csrf_missing")
        assert body["details"]["missing"] == ["header", "cookie"]


class TestSignIn:
    async def test_signin_returns_session_body_and_refresh_cookie(self, api: AuthApi):
        """The access token in JSON; the refresh token only in the HttpOnly cookie."""
        email = unique_email()
        await api.signup(email)

        response = await api.signin(email)

        body = response.json()
        assert response.status_code == 200
        assert set(body) == {
            "accessToken", "tokenType", "expiresIn", "expiresAt", "csrfToken", "user"
        }  # fmt: skip
        assert body["tokenType"] == "bearer"
        assert body["expiresIn"] == 900
        assert body["user"]["email"] == email
        refresh_cookie = api.refresh_cookie
        assert refresh_cookie
        assert refresh_cookie not in response.text

    async def test_signin_wrong_password_and_unknown_email_give_the_same_401(self, api: AuthApi):
        """No account enumeration: one body for both failures."""
        email = unique_email()
        await api.signup(email)

        wrong_password = await api.signin(email, password="wrong password!")
        unknown_email = await api.signin(unique_email())

        assert_error(wrong_password, 401, "auth_invalid_credentials")
        assert wrong_password.json() == unknown_email.json()
        assert wrong_password.json()["message"] == "Invalid email or password"

    async def test_signin_malformed_email_is_422(self, api: AuthApi):
        response = await api.post("/auth/signin", {"email": "nope", "password": PASSWORD})

        assert_error(response, 422, "validation_error")

    async def test_signin_with_stale_csrf_token_is_403_mismatch(self, api: AuthApi, client):
        await api.fetch_csrf()

        response = await client.post(
            "/auth/signin",
            json={"email": unique_email(), "password": PASSWORD},
            headers={"X-CSRF-Token": "forged"},
        )

        assert_error(response, 403, "csrf_mismatch")

    async def test_signin_from_disallowed_origin_is_403(self, api: AuthApi):
        response = await api.post(
            "/auth/signin",
            {"email": unique_email(), "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )

        assert_error(response, 403, "origin_not_allowed")

    async def test_signin_csrf_token_in_body_works_with_the_new_cookie(self, api: AuthApi):
        """The csrfToken of a signin body is valid with the CSRF cookie the same response set."""
        user = await api.signed_in_user()

        response = await api.refresh()  # uses the csrfToken from the signin body

        assert response.status_code == 200
        assert response.json()["user"]["id"] == user.id


class TestMe:
    async def test_me_returns_user_and_profile(self, client, user):
        response = await client.get("/auth/me", headers=user.auth)

        assert response.status_code == 200
        assert response.json() == {
            "user": {
                "id": user.id,
                "email": user.email,
                "emailConfirmed": True,
                "profile": {"displayName": "Ada"},
            }
        }

    async def test_me_without_header_is_401_with_plain_bearer_challenge(self, app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as fresh:
            response = await fresh.get("/auth/me")

        body = assert_error(response, 401, "unauthorized")
        assert body["message"] == "Missing or invalid token"
        assert response.headers["www-authenticate"] == "Bearer"
        assert "hint" not in body["details"]

    async def test_me_with_cookies_but_no_header_is_401_with_hint(self, client, user):
        """The bug this API exists to prevent: raw fetch with cookies, no Authorization header."""
        response = await client.get("/auth/me")  # the jar holds the refresh and CSRF cookies

        body = assert_error(response, 401, "unauthorized")
        assert "Authorization: Bearer" in body["details"]["hint"]
        assert "cookies are not accepted" in body["details"]["hint"]

    @pytest.mark.parametrize(
        "authorization", ["Bearer not-a-jwt", "Bearer ", "Bearer eyJhbGciOiJub25lIn0.e30."]
    )
    async def test_me_with_bad_token_is_401_invalid_token(self, client, authorization):
        response = await client.get("/auth/me", headers={"Authorization": authorization})

        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'

    async def test_me_with_basic_scheme_is_401_plain_bearer(self, client):
        response = await client.get("/auth/me", headers={"Authorization": "Basic YTpi"})

        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


class TestRefresh:
    async def test_refresh_rotates_cookie_and_returns_session_body(self, api: AuthApi, user):
        old_cookie = api.refresh_cookie

        response = await api.refresh()

        assert response.status_code == 200
        assert response.json()["user"]["id"] == user.id
        assert response.json()["accessToken"]
        new_cookie = api.refresh_cookie
        assert new_cookie
        assert new_cookie != old_cookie
        assert new_cookie not in response.text

    async def test_refresh_without_cookie_is_401_missing(self, api: AuthApi):
        response = await api.refresh()

        assert_error(response, 401, "refresh_token_missing")

    async def test_refresh_with_unknown_cookie_is_401_invalid_and_clears_it(self, api: AuthApi):
        await api.fetch_csrf()
        api.put_refresh_cookie("made-up")

        response = await api.refresh()

        assert_error(response, 401, "refresh_token_invalid")
        assert 'sb_refresh_token=""' in response.headers["set-cookie"]
        assert "Max-Age=0" in response.headers["set-cookie"]

    async def test_refresh_without_csrf_is_403(self, client, user):
        response = await client.post("/auth/refresh")

        assert_error(response, 403, "csrf_missing")

    async def test_refresh_reused_after_interval_is_401_and_revokes_session(self, make_api):
        """A rotated token presented after the reuse interval kills the whole session."""
        api = await make_api(refresh_reuse_interval_seconds=0)
        await api.signed_in_user()
        stolen = api.refresh_cookie
        await api.refresh()
        current = api.refresh_cookie

        api.put_refresh_cookie(stolen)
        reused = await api.refresh()
        api.put_refresh_cookie(current)
        after = await api.refresh()

        assert_error(reused, 401, "refresh_token_reused")
        assert_error(after, 401, "refresh_token_invalid")

    async def test_refresh_twice_within_interval_returns_same_successor(self, api: AuthApi, user):
        """Two tabs refreshing with one cookie both stay signed in, with the same new cookie."""
        old_cookie = api.refresh_cookie
        first = await api.refresh()
        first_cookie = api.refresh_cookie
        api.put_refresh_cookie(old_cookie)

        second = await api.refresh()

        assert first.status_code == 200
        assert second.status_code == 200
        assert api.refresh_cookie == first_cookie


class TestLogout:
    async def test_logout_revokes_session_and_clears_cookie(self, api: AuthApi, user):
        old_cookie = api.refresh_cookie

        response = await api.logout()

        assert response.status_code == 200
        assert response.json() == {"ok": True}
        assert "sb_refresh_token" not in api.client.cookies
        api.put_refresh_cookie(old_cookie)
        assert_error(await api.refresh(), 401, "refresh_token_invalid")

    async def test_logout_without_cookie_is_200(self, api: AuthApi):
        response = await api.logout()

        assert response.status_code == 200

    async def test_logout_without_csrf_is_403(self, client, user):
        response = await client.post("/auth/logout")

        assert_error(response, 403, "csrf_missing")

    async def test_after_logout_me_refuses_the_token_and_items_accept_it_until_exp(
        self, api: AuthApi, user
    ):
        """/auth/me asks the provider, so it refuses an ended session at once; data routes verify
        locally and cannot recall a token: it expires by exp, which is why its lifetime is short."""
        await api.logout()

        me = await api.client.get("/auth/me", headers=user.auth)
        items = await api.client.get("/items", headers=user.auth)

        assert_error(me, 401, "unauthorized")
        assert me.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert items.status_code == 200


class TestRateLimit:
    async def test_signin_per_account_limit_is_429_with_retry_after(self, make_api):
        api = await make_api(rate_limit_signin_per_account="3/minute")
        email = unique_email()
        await api.signup(email)
        attempts = [await api.signin(email, password="wrong password") for _ in range(3)]

        limited = await api.signin(email)  # the right password, but too late

        assert [a.status_code for a in attempts] == [401, 401, 401]
        body = assert_error(limited, 429, "rate_limited")
        retry_after = limited.headers["retry-after"]
        assert retry_after.isdigit()
        assert 1 <= int(retry_after) <= 60
        assert body["details"]["retryAfterSeconds"] == int(retry_after)

    async def test_successful_signins_count_toward_the_limit(self, make_api):
        api = await make_api(rate_limit_signin_per_account="2/minute")
        email = unique_email()
        await api.signup(email)
        statuses = [(await api.signin(email)).status_code for _ in range(3)]

        assert statuses == [200, 200, 429]

    async def test_per_address_limit_covers_signup_and_signin(self, make_api):
        api = await make_api(rate_limit_signin_per_address="3/minute")
        statuses = [(await api.signup(unique_email())).status_code for _ in range(2)]
        statuses.append((await api.signin(unique_email())).status_code)
        statuses.append((await api.signup(unique_email())).status_code)

        assert statuses == [201, 201, 401, 429]


FULL_WIDTH = str.maketrans(
    "abcdefghijklmnopqrstuvwxyz", "".join(chr(0xFF41 + i) for i in range(26))
)


class TestEmailIdentity:
    """One account per address, whatever its Unicode spelling; the typed form is kept."""

    async def test_signup_full_width_look_alike_is_409(self, api: AuthApi):
        local = f"ada{uuid.uuid4().hex[:8]}"
        await api.signup(f"{local}@example.com")

        response = await api.signup(f"{local.translate(FULL_WIDTH)}@example.com")

        assert_error(response, 409, "user_already_exists")

    async def test_signin_with_a_look_alike_reaches_the_same_account(self, api: AuthApi):
        local = f"ada{uuid.uuid4().hex[:8]}"
        created = (await api.signup(f"{local}@example.com")).json()["user"]

        response = await api.signin(f"{local.upper().translate(FULL_WIDTH)}@example.com")

        assert response.status_code == 200, response.text
        assert response.json()["user"] == created

    async def test_the_address_as_typed_is_kept_for_display(self, api: AuthApi, client):
        email = f"Ada.Lovelace{uuid.uuid4().hex[:8]}@example.com"

        signup = await api.signup(email)
        signin = await api.signin(email.lower())
        me = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {signin.json()['accessToken']}"}
        )

        assert signup.json()["user"]["email"] == email
        assert signin.json()["user"]["email"] == email
        assert me.json()["user"]["email"] == email

    async def test_look_alikes_share_one_per_account_rate_limit(self, make_api):
        api = await make_api(rate_limit_signin_per_account="2/minute")
        local = f"ada{uuid.uuid4().hex[:8]}"
        spellings = [f"{local}@example.com", f"{local.upper()}@example.com"]

        statuses = [
            (await api.signin(email)).status_code
            for email in [*spellings, f"{local.translate(FULL_WIDTH)}@example.com"]
        ]

        assert statuses == [401, 401, 429]


class TestEmailSyntax:
    @pytest.mark.parametrize("domain", ["example.test", "intranet.local", "corp.invalid"])
    async def test_special_use_domains_are_addresses_like_any_other(self, api: AuthApi, domain):
        """This service sends no mail; like GoTrue, it takes any well-formed address."""
        email = f"{uuid.uuid4().hex[:8]}@{domain}"

        signup = await api.signup(email)
        signin = await api.signin(email)

        assert signup.status_code == 201, signup.text
        assert signin.status_code == 200, signin.text


class TestUnstorableValues:
    """Values no database or hash can take are 422 before anything is written."""

    async def test_signup_display_name_with_nul_is_422_and_creates_nothing(self, api: AuthApi):
        email = unique_email()
        await api.fetch_csrf()
        body = {"email": email, "password": PASSWORD, "profile": {"displayName": "a\x00b"}}

        response = await api.client.post(
            "/auth/signup",
            content=json.dumps(body).encode(),
            headers={"X-CSRF-Token": api.csrf_token or "", "Content-Type": "application/json"},
        )
        retry = await api.signup(email)

        assert_error(response, 422, "validation_error")
        assert retry.status_code == 201

    @pytest.mark.parametrize("route", ["/auth/signup", "/auth/signin"])
    async def test_password_with_a_lone_surrogate_is_422(self, api: AuthApi, route):
        await api.fetch_csrf()
        body = {"email": unique_email(), "password": "long enough \ud800 password"}

        response = await api.client.post(
            route,
            content=json.dumps(body).encode(),
            headers={"X-CSRF-Token": api.csrf_token or "", "Content-Type": "application/json"},
        )

        body = assert_error(response, 422, "validation_error")
        assert "\\ud800" not in response.text

    async def test_password_with_nul_is_accepted_and_not_truncated(self, api: AuthApi):
        email = unique_email()
        await api.signup(email, password="prefix\x00suffix-one")

        right = await api.signin(email, password="prefix\x00suffix-one")
        truncated = await api.signin(email, password="prefix")
        other_tail = await api.signin(email, password="prefix\x00suffix-two")

        assert right.status_code == 200
        assert_error(truncated, 401, "auth_invalid_credentials")
        assert_error(other_tail, 401, "auth_invalid_credentials")
