"""Logs (ASVS 5.0 V16.2.5, V16.3): no secret in any record, and the security events.

Every test of this suite already runs at DEBUG under `no_secret_in_logs` (conftest.py), which
checks that no secret its traffic carried is logged. This module adds a full session over a real
uvicorn (access logs included), the keys themselves, and the refresh-reuse event.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from backend.app.core.server_secrets import app_secret
from backend.app.main import create_app
from backend.tests.helpers import AuthApi
from backend.tests.live_server import live_server
from backend.tests.security.conftest import JWT_SHAPE, log_text, security_events
from backend.tests.test_end_to_end import run_seed_flow


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


class TestNoSecretInLogs:
    def test_a_full_session_over_real_http_logs_no_secret_or_key(self, make_settings, caplog):
        """signup, signin, me, refresh, logout, refresh after logout, at DEBUG; then no token,
        cookie, CSRF token, password, signing key or app secret in any record."""
        settings = make_settings()
        app = create_app(settings)
        caplog.set_level(logging.DEBUG)
        secrets: list[str] = []
        with live_server(app, log_level="debug") as base_url:
            run_seed_flow(base_url, secrets)
            with httpx.Client(base_url=base_url, timeout=30) as probe:  # failures log too
                probe.post("/auth/logout", headers={"X-CSRF-Token": "forged-csrf-token"})
                probe.get("/items", headers={"Authorization": "Bearer eyJhbGciOi.eyJzdWIi.c2ln"})
            signer = app.state.services.signer
            private_pem = signer._private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()

        text = log_text(caplog.records)
        assert "POST /auth/refresh" in text
        assert not JWT_SHAPE.search(text)
        for secret in [*secrets, "forged-csrf-token", app_secret(settings).decode("latin-1")]:
            assert secret not in text
        assert private_pem.splitlines()[1] not in text


class TestSecurityEvents:
    async def test_refresh_reuse_is_a_security_event(self, make_api, caplog):
        api: AuthApi = await make_api(refresh_reuse_interval_seconds=0)
        await api.signed_in_user()
        stolen = api.refresh_cookie
        await api.refresh()

        api.put_refresh_cookie(stolen)
        await api.refresh()

        [event] = security_events(caplog, "refresh_token_reused")
        assert event.levelno == logging.WARNING
        assert event.address == "127.0.0.1"  # type: ignore[attr-defined]
        assert stolen
        assert stolen not in log_text(caplog.records)

    async def test_every_event_goes_to_one_logger_at_warning(self, client, caplog):
        await client.get("/auth/csrf")
        await client.post("/auth/refresh", headers={"X-CSRF-Token": "nope"})

        events = [r for r in caplog.records if r.name == "backend.app.security"]

        assert events
        assert all(record.levelno == logging.WARNING for record in events)
