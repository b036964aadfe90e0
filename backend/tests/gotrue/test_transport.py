"""/auth/v1's transport: the gateway's key check, GoTrue's two error formats, CORS, and logs."""

from __future__ import annotations

import logging

import pytest

from backend.app.core.logging import install_redaction, redact
from backend.tests.conftest import SPA_ORIGIN
from backend.tests.gotrue.conftest import legacy_jwt
from backend.tests.gotrue_server import ANON_KEY, SERVICE_ROLE_KEY
from backend.tests.helpers import unique_email


class TestApiKey:
    async def test_request_without_apikey_is_refused_as_the_gateway_does(self, gotrue):
        response = await gotrue.call("GET", "/settings", key=None)

        assert response.status_code == 401
        assert response.json()["message"] == "No API key found in request"
        assert "hint" in response.json()

    async def test_request_with_unknown_apikey_is_refused_as_the_gateway_does(self, gotrue):
        response = await gotrue.call("GET", "/settings", key="sb_publishable_guess")

        assert response.status_code == 401
        assert response.json()["message"] == "Invalid API key"
        assert "code" not in response.json()  # not a GoTrue body: clients report code None

    @pytest.mark.parametrize("key", [ANON_KEY, SERVICE_ROLE_KEY])
    async def test_either_key_is_accepted(self, gotrue, key):
        response = await gotrue.call("GET", "/health", key=key)

        assert response.status_code == 200
        assert response.json()["name"] == "GoTrue"

    async def test_a_legacy_jwt_is_not_an_apikey(self, gotrue):
        """The JWT secret signs admin bearers; it does not make up keys."""
        response = await gotrue.call("GET", "/settings", key=legacy_jwt("anon"))

        assert response.status_code == 401

    async def test_public_route_ignores_a_stale_bearer(self, gotrue):
        """supabase-py sends its last user token on /signup and /token: only apikey counts."""
        response = await gotrue.signup(headers={"Authorization": "Bearer expired.or.garbage"})

        assert response.status_code == 200

    async def test_jwks_is_open_and_cacheable(self, gotrue):
        response = await gotrue.call("GET", "/.well-known/jwks.json", key=None)

        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=600"
        (key,) = response.json()["keys"]
        assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
        assert "d" not in key


class TestDisabled:
    async def test_only_the_jwks_is_served_when_the_api_is_off(self, client):
        jwks = await client.get("/auth/v1/.well-known/jwks.json")
        settings = await client.get("/auth/v1/settings", headers={"apikey": ANON_KEY})

        assert jwks.status_code == 200
        assert jwks.headers["cache-control"] == "public, max-age=600"
        assert settings.status_code == 404
        assert settings.json()["code"] == "not_found"  # the app's own body: no GoTrue here


class TestErrorFormats:
    async def test_versioned_request_gets_code_and_message_and_the_header_echoed(self, gotrue):
        response = await gotrue.sign_in(unique_email(), "wrong password")

        assert response.status_code == 400
        assert response.json() == {
            "code": "invalid_credentials",
            "message": "Invalid login credentials",
        }
        assert response.headers["x-supabase-api-version"] == "2024-01-01"
        assert response.headers["x-sb-error-code"] == "invalid_credentials"

    async def test_unversioned_request_gets_the_legacy_body(self, gotrue):
        response = await gotrue.sign_in(unique_email(), "wrong password", versioned=False)

        assert response.status_code == 400
        assert response.json() == {
            "code": 400,
            "error_code": "invalid_credentials",
            "msg": "Invalid login credentials",
        }
        assert "x-supabase-api-version" not in response.headers

    async def test_a_version_before_2024_or_not_a_date_is_legacy(self, gotrue):
        for version in ("2023-12-31", "latest"):
            response = await gotrue.sign_in(
                unique_email(), "x", versioned=False, headers={"X-Supabase-Api-Version": version}
            )

            assert response.json()["error_code"] == "invalid_credentials"
            assert "x-supabase-api-version" not in response.headers

    @pytest.mark.parametrize("versioned", [True, False])
    async def test_weak_password_carries_its_reasons_in_both_formats(self, gotrue, versioned):
        response = await gotrue.call(
            "POST", "/signup", json={"email": unique_email(), "password": "short"},
            versioned=versioned,
        )  # fmt: skip

        assert response.status_code == 422
        body = response.json()
        assert body["weak_password"] == {"reasons": ["length"]}
        assert body["code" if versioned else "error_code"] == "weak_password"
        assert "8 characters" in body["message" if versioned else "msg"]

    async def test_unknown_path_and_method_get_gotrue_bodies(self, gotrue):
        missing = await gotrue.call("GET", "/no-such-route")
        wrong_method = await gotrue.call("DELETE", "/settings")

        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
        assert set(missing.json()) == {"code", "message"}
        assert wrong_method.status_code == 405
        assert wrong_method.json()["code"] == "method_not_allowed"

    async def test_paths_outside_auth_v1_keep_the_app_body(self, gotrue):
        response = await gotrue.client.get("/no-such-route")

        assert response.status_code == 404
        assert set(response.json()) == {"code", "message", "details"}


def preflight(path_headers: str) -> dict[str, str]:
    return {
        "Origin": SPA_ORIGIN,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": path_headers,
    }


SDK_HEADERS = "apikey,authorization,content-type,x-client-info,x-supabase-api-version"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestCors:
    async def test_preflight_with_the_sdk_headers_is_allowed_under_auth_v1(self, gotrue):
        response = await gotrue.client.options("/auth/v1/user", headers=preflight(SDK_HEADERS))

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
        allowed = response.headers["access-control-allow-headers"].lower()
        for header in SDK_HEADERS.split(","):
            assert header in allowed
        assert "PUT" in response.headers["access-control-allow-methods"]

    async def test_gotrue_headers_are_exposed_under_auth_v1(self, gotrue):
        response = await gotrue.call("GET", "/settings", headers={"Origin": SPA_ORIGIN})

        exposed = response.headers["access-control-expose-headers"].lower()
        assert {"x-total-count", "link", "x-supabase-api-version"} <= {
            header.strip() for header in exposed.split(",")
        }

    @pytest.mark.parametrize("path", ["/items", "/auth/signin"])
    async def test_preflight_with_apikey_elsewhere_is_still_refused(self, gotrue, path):
        response = await gotrue.client.options(path, headers=preflight("apikey,content-type"))

        assert response.status_code == 400
        assert not [name for name in response.headers if name.startswith("access-control-allow")]

    async def test_preflight_from_another_origin_is_refused_under_auth_v1(self, gotrue):
        headers = preflight("apikey") | {"Origin": "https://evil.example"}

        response = await gotrue.client.options("/auth/v1/token", headers=headers)

        assert response.status_code == 400
        assert not [name for name in response.headers if name.startswith("access-control-allow")]


class TestNoSecretInLogs:
    @pytest.mark.parametrize(
        "line",
        [
            f"headers={{'apikey': '{SERVICE_ROLE_KEY}'}}",
            f"apikey: {SERVICE_ROLE_KEY}",
            f"GET /auth/v1/settings?apikey={SERVICE_ROLE_KEY}&x=1",
        ],
    )
    def test_redact_removes_an_apikey(self, line):
        assert SERVICE_ROLE_KEY not in redact(line)

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    async def test_a_whole_flow_logs_no_key_token_or_password(self, gotrue, caplog):
        install_redaction()
        caplog.set_level(logging.DEBUG)
        logging.getLogger("httpx").info("request headers %s", {"apikey": ANON_KEY})

        session = await gotrue.session(password="a password for the logs")
        await gotrue.refresh(session["refresh_token"])
        await gotrue.call("POST", "/logout", bearer=session["access_token"])
        await gotrue.admin("GET", "/users")

        for secret in (
            ANON_KEY,
            SERVICE_ROLE_KEY,
            session["access_token"],
            session["refresh_token"],
            "a password for the logs",
        ):
            assert secret not in caplog.text
