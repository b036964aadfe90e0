"""What a request may carry: bounded bodies (413) and headers (431), with the error body."""

from __future__ import annotations

import json

from backend.tests.api.test_auth import assert_error
from backend.tests.helpers import PASSWORD, AuthApi, unique_email

LIMIT = 1024


class TestBodyLimit:
    async def test_declared_body_over_the_limit_is_413_before_any_route(self, make_api):
        api = await make_api(max_body_bytes=LIMIT)
        await api.fetch_csrf()

        response = await api.client.post(
            "/auth/signin",
            content=b"x" * (LIMIT + 1),
            headers={"Content-Type": "application/json", "X-CSRF-Token": api.csrf_token or ""},
        )

        body = assert_error(response, 413, "payload_too_large")
        assert body["details"] == {"maxBytes": LIMIT}

    async def test_streamed_body_over_the_limit_is_413(self, make_api):
        """No Content-Length (chunked): refused while being read, with the same error body."""
        api = await make_api(max_body_bytes=LIMIT)
        await api.fetch_csrf()

        async def chunks():
            for _ in range(64):
                yield b"x" * 256

        response = await api.client.post(
            "/auth/signin",
            content=chunks(),
            headers={"Content-Type": "application/json", "X-CSRF-Token": api.csrf_token or ""},
        )

        assert_error(response, 413, "payload_too_large")

    async def test_body_within_the_limit_is_served(self, make_api):
        api = await make_api(max_body_bytes=LIMIT)
        email = unique_email()
        padding = " " * (LIMIT - len(json.dumps({"email": email, "password": PASSWORD})) - 10)

        response = await api.post(
            "/auth/signup",
            content=json.dumps({"email": email, "password": PASSWORD}) + padding,
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 201, response.text

    async def test_default_limit_is_well_under_one_megabyte(self, api: AuthApi):
        response = await api.post("/auth/signin", content=b"x" * 1_000_000)

        assert_error(response, 413, "payload_too_large")


class TestHeaderLimit:
    async def test_headers_over_32_kib_are_431(self, client):
        response = await client.get("/health", headers={"Cookie": "a=" + "x" * 40_000})

        body = assert_error(response, 431, "request_headers_too_large")
        assert "xxxx" not in response.text
        assert body["details"] == {"maxBytes": 32 * 1024}

    async def test_ordinary_headers_are_served(self, client):
        response = await client.get("/health", headers={"Cookie": "a=" + "x" * 4_000})

        assert response.status_code == 200
