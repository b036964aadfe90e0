"""CORS: the SPA's origins with credentials; a refused preflight grants nothing."""

from __future__ import annotations

import pytest

from backend.tests.conftest import SPA_ORIGIN


def preflight(origin: str, method: str = "POST", headers: str = "content-type,x-csrf-token"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestCors:
    async def test_preflight_from_spa_origin_is_allowed_with_credentials(self, client):
        response = await client.options("/auth/signin", headers=preflight(SPA_ORIGIN))

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
        allowed = response.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "x-csrf-token"):
            assert header in allowed

    async def test_preflight_from_other_origin_carries_no_allow_headers(self, client):
        response = await client.options("/auth/signin", headers=preflight("https://evil.example"))

        assert response.status_code == 400
        assert not [name for name in response.headers if name.startswith("access-control-allow")]

    async def test_preflight_with_unlisted_header_is_refused(self, client):
        response = await client.options("/items", headers=preflight(SPA_ORIGIN, headers="x-other"))

        assert response.status_code == 400
        assert not [name for name in response.headers if name.startswith("access-control-allow")]

    async def test_simple_request_from_spa_origin_gets_origin_echoed(self, client):
        response = await client.get("/health", headers={"Origin": SPA_ORIGIN})

        assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
