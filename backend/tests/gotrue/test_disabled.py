"""GoTrue's own "disabled" answers for what this server does not offer (supabase/auth
`internal/api/`: middleware.go, api.go, token_oidc.go, web3.go, mfa.go), on SQLite and
PostgreSQL. The clients' typed errors for them: test_supabase_py.py, test_supabase_js.py."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from backend.tests.helpers import PASSWORD


def body_of(response) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()


class TestSso:
    @pytest.mark.parametrize(
        ("method", "path"),
        [("POST", "/sso"), ("GET", "/sso/saml/metadata"), ("POST", "/sso/saml/acs")],
    )
    async def test_saml_is_disabled(self, gotrue, method, path):
        response = await gotrue.call(method, path, json={"domain": "example.com"})

        assert body_of(response) == (
            404,
            {"code": "saml_provider_disabled", "message": "SAML 2.0 is disabled"},
        )

    async def test_the_gateway_still_wants_a_key(self, gotrue):
        assert (await gotrue.call("POST", "/sso", key=None)).status_code == 401


class TestAnonymous:
    @pytest.mark.parametrize("body", [{}, {"data": {"a": 1}}, {"email": "", "phone": ""}])
    async def test_a_sign_up_without_email_or_phone_is_an_anonymous_sign_in(self, gotrue, body):
        response = await gotrue.call("POST", "/signup", json=body)

        assert body_of(response) == (
            422,
            {"code": "anonymous_provider_disabled", "message": "Anonymous sign-ins are disabled"},
        )


class TestIdToken:
    @pytest.mark.parametrize(
        ("body", "issuer"),
        [
            ({"provider": "google", "id_token": "x"}, "https://accounts.google.com"),
            ({"provider": "facebook", "id_token": "x"}, "https://www.facebook.com"),
            (
                {"client_id": "c", "issuer": "https://accounts.google.com", "id_token": "x"},
                "https://accounts.google.com",
            ),
            (
                {
                    "provider": "apple",
                    "id_token": jwt.encode({"iss": "https://appleid.apple.com"}, "k" * 32),
                },
                "https://appleid.apple.com",
            ),
        ],
    )
    async def test_every_provider_is_disabled(self, gotrue, body, issuer):
        response = await gotrue.call("POST", "/token", params={"grant_type": "id_token"}, json=body)

        assert body_of(response) == (
            400,
            {
                "code": "provider_disabled",
                "message": f'Provider (issuer "{issuer}") is not enabled',
            },
        )

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                {"provider": "apple", "id_token": "not a jwt"},
                "Unable to detect issuer in ID token for Apple provider",
            ),
            ({"provider": "custom:mine", "id_token": "x"}, "Custom OAuth providers are disabled"),
            ({"provider": "nope", "id_token": "x"}, 'Custom OIDC provider "nope" not allowed'),
        ],
    )
    async def test_other_requests_are_validation_failed(self, gotrue, body, message):
        response = await gotrue.call("POST", "/token", params={"grant_type": "id_token"}, json=body)

        assert body_of(response) == (400, {"code": "validation_failed", "message": message})

    @pytest.mark.parametrize(
        ("body", "description"),
        [
            ({"provider": "google"}, "id_token required"),
            ({"id_token": "x"}, "provider or client_id and issuer required"),
            ({"id_token": ["x"], "provider": "google"}, "id_token required"),
        ],
    )
    async def test_missing_fields_are_oauth_errors(self, gotrue, body, description):
        response = await gotrue.call("POST", "/token", params={"grant_type": "id_token"}, json=body)

        assert body_of(response) == (
            400,
            {"error": "invalid request", "error_description": description},
        )

    async def test_bad_json_is_bad_json(self, gotrue):
        response = await gotrue.call(
            "POST",
            "/token",
            params={"grant_type": "id_token"},
            content=b'{"id_token": NaN}',
            headers={"Content-Type": "application/json"},
        )

        assert (response.status_code, response.json()["code"]) == (400, "bad_json")


class TestWeb3:
    async def test_web3_is_disabled(self, gotrue):
        response = await gotrue.call(
            "POST", "/token", params={"grant_type": "web3"}, json={"chain": "solana"}
        )

        assert body_of(response) == (
            422,
            {"code": "web3_provider_disabled", "message": "Web3 provider is disabled"},
        )


class TestManualLinking:
    async def test_without_a_session_it_is_no_authorization(self, gotrue):
        response = await gotrue.call("GET", "/user/identities/authorize?provider=github")

        assert (response.status_code, response.json()["code"]) == (401, "no_authorization")

    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/user/identities/authorize?provider=github"), ("DELETE", "/user/identities/x")],
    )
    async def test_with_a_session_it_is_disabled(self, gotrue, method, path):
        token = (await gotrue.session())["access_token"]

        response = await gotrue.call(method, path, bearer=token)

        assert body_of(response) == (
            404,
            {"code": "manual_linking_disabled", "message": "Manual linking is disabled"},
        )


class TestFactors:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/factors"),
            ("POST", "/factors/00000000-0000-4000-8000-000000000000/challenge"),
            ("POST", "/factors/00000000-0000-4000-8000-000000000000/verify"),
            ("DELETE", "/factors/00000000-0000-4000-8000-000000000000"),
        ],
    )
    async def test_without_a_session_it_is_no_authorization(self, gotrue, method, path):
        response = await gotrue.call(method, path, json={"factor_type": "totp"})

        assert body_of(response) == (
            401,
            {"code": "no_authorization", "message": "This endpoint requires a valid Bearer token"},
        )

    async def test_a_key_as_bearer_is_bad_jwt(self, gotrue):
        """What supabase-js sends without a session: its `Bearer <apikey>`."""
        response = await gotrue.call("POST", "/factors", bearer="test-anon-key", json={})

        assert (response.status_code, response.json()["code"]) == (403, "bad_jwt")

    @pytest.mark.parametrize(
        ("factor_type", "code", "name"),
        [
            ("totp", "mfa_totp_enroll_not_enabled", "TOTP"),
            ("phone", "mfa_phone_enroll_not_enabled", "Phone"),
            ("webauthn", "mfa_webauthn_enroll_not_enabled", "WebAuthn"),
        ],
    )
    async def test_enrolment_is_disabled_for_every_type(self, gotrue, factor_type, code, name):
        token = (await gotrue.session())["access_token"]

        response = await gotrue.call(
            "POST", "/factors", bearer=token, json={"factor_type": factor_type}
        )

        assert body_of(response) == (
            422,
            {"code": code, "message": f"MFA enroll is disabled for {name}"},
        )

    @pytest.mark.parametrize("factor_type", [None, "sms", 1, ["totp"]])
    async def test_an_unknown_type_is_validation_failed(self, gotrue, factor_type):
        token = (await gotrue.session())["access_token"]

        response = await gotrue.call(
            "POST", "/factors", bearer=token, json={"factor_type": factor_type}
        )

        assert body_of(response) == (
            400,
            {
                "code": "validation_failed",
                "message": "factor_type needs to be totp, phone, or webauthn",
            },
        )

    async def test_no_factor_exists(self, gotrue):
        token = (await gotrue.session())["access_token"]

        unknown = await gotrue.call(
            "POST", "/factors/00000000-0000-4000-8000-000000000000/challenge", bearer=token
        )
        malformed = await gotrue.call("DELETE", "/factors/nope", bearer=token)

        assert body_of(unknown) == (
            404,
            {"code": "mfa_factor_not_found", "message": "Factor not found"},
        )
        assert body_of(malformed) == (
            404,
            {"code": "validation_failed", "message": "factor_id must be an UUID"},
        )


class TestPhone:
    async def test_phone_sign_up_and_sign_in_are_disabled(self, gotrue):
        up = await gotrue.call("POST", "/signup", json={"phone": "+15550100", "password": PASSWORD})
        signin = await gotrue.call(
            "POST",
            "/token",
            params={"grant_type": "password"},
            json={"phone": "+15550100", "password": PASSWORD},
        )

        assert body_of(up) == (
            400,
            {"code": "phone_provider_disabled", "message": "Phone signups are disabled"},
        )
        assert body_of(signin) == (
            422,
            {"code": "phone_provider_disabled", "message": "Phone logins are disabled"},
        )
