"""The OpenAPI document shows how each route authenticates."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
async def spec(client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def security_of(spec: dict[str, Any], method: str, path: str) -> set[str]:
    requirements = spec["paths"][path][method].get("security", [])
    return {name for requirement in requirements for name in requirement}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestOpenApi:
    async def test_security_schemes_are_bearer_csrf_header_and_refresh_cookie(self, spec):
        schemes = spec["components"]["securitySchemes"]

        assert schemes["BearerAuth"] == {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": schemes["BearerAuth"]["description"],
        }
        assert schemes["CsrfToken"]["in"] == "header"
        assert schemes["CsrfToken"]["name"] == "X-CSRF-Token"
        assert schemes["RefreshCookie"]["in"] == "cookie"
        assert schemes["RefreshCookie"]["name"] == "sb_refresh_token"

    @pytest.mark.parametrize(
        ("method", "path", "expected"),
        [
            ("get", "/auth/me", {"BearerAuth"}),
            ("get", "/items", {"BearerAuth"}),
            ("patch", "/items/{item_id}", {"BearerAuth"}),
            ("post", "/auth/signup", {"CsrfToken"}),
            ("post", "/auth/signin", {"CsrfToken"}),
            ("post", "/auth/refresh", {"CsrfToken", "RefreshCookie"}),
            ("post", "/auth/logout", {"CsrfToken", "RefreshCookie"}),
            ("get", "/auth/csrf", set()),
            ("get", "/health", set()),
        ],
    )
    async def test_each_route_declares_exactly_its_credentials(self, spec, method, path, expected):
        assert security_of(spec, method, path) == expected

    async def test_bodies_are_camel_case_with_examples(self, spec):
        schemas = spec["components"]["schemas"]

        assert "accessToken" in schemas["SessionOut"]["properties"]
        assert "refreshToken" not in schemas["SessionOut"]["properties"]
        assert schemas["SignUpIn"]["examples"][0]["profile"] == {"displayName": "Ada"}

    async def test_text_fields_publish_the_nul_rule(self, spec):
        schemas = spec["components"]["schemas"]

        for model, field in [("ItemCreate", "title"), ("ItemUpdate", "description")]:
            assert schemas[model]["properties"][field]["pattern"] == "^[^\\x00]*$"

    async def test_signup_publishes_the_password_length_policy(self, spec):
        password = spec["components"]["schemas"]["SignUpIn"]["properties"]["password"]

        assert (password["minLength"], password["maxLength"]) == (8, 1024)
