"""Sessions (ASVS 5.0 V7.3 timeouts, V7.4 termination), on SQLite and PostgreSQL.

Timeouts are checked with a fake clock under the embedded provider: the server decides, whatever
the browser still holds (the refresh cookie's `Max-Age` is only a convenience).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from backend.app.core.settings import Settings
from backend.app.identity.embedded import EmbeddedGoTrue, provider, store
from backend.tests.helpers import AuthApi

IDLE = 600
ABSOLUTE = 3600


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    for module in (provider, store):  # the provider and its store tell the time
        monkeypatch.setattr(module, "utcnow", fake)
    return fake


def code_of(response) -> str:
    return str(response.json().get("code", response.status_code))


class TestDefaults:
    def test_idle_and_absolute_timeouts_default_to_7_and_14_days(self):
        """V7.1.1: the documented defaults."""
        settings = Settings(_env_file=None)

        assert settings.session_idle_timeout_seconds == 7 * 24 * 3600
        assert settings.session_ttl_seconds == 14 * 24 * 3600


class TestIdleTimeout:
    """V7.3.1: a session unused (no refresh) for the idle timeout is over."""

    async def test_a_session_idle_past_the_timeout_cannot_refresh(self, make_api, clock):
        api: AuthApi = await make_api(
            session_idle_timeout_seconds=IDLE, session_ttl_seconds=ABSOLUTE
        )
        user = await api.signed_in_user()
        clock.now += timedelta(seconds=IDLE + 1)

        refresh = await api.refresh()
        me = await api.client.get("/auth/me", headers=user.auth)

        assert code_of(refresh) == "refresh_token_invalid"
        assert me.status_code == 401

    async def test_each_refresh_restarts_the_idle_clock(self, make_api, clock):
        api: AuthApi = await make_api(
            session_idle_timeout_seconds=IDLE, session_ttl_seconds=ABSOLUTE
        )
        await api.signed_in_user()
        started = clock.now
        statuses = []
        for _ in range(3):
            clock.now += timedelta(seconds=IDLE - 60)
            statuses.append((await api.refresh()).status_code)

        assert statuses == [200, 200, 200]
        assert clock.now - started > timedelta(seconds=IDLE)


class TestAbsoluteTimeout:
    """V7.3.2, V10.4.8: however active, a session ends at SESSION_TTL_SECONDS."""

    async def test_an_active_session_ends_at_its_absolute_lifetime(self, make_api, clock):
        api: AuthApi = await make_api(
            session_idle_timeout_seconds=IDLE, session_ttl_seconds=ABSOLUTE
        )
        await api.signed_in_user()
        in_time = ABSOLUTE // (IDLE - 60)  # refreshes every 9 minutes that fit in the hour
        statuses = []
        for _ in range(in_time + 1):
            clock.now += timedelta(seconds=IDLE - 60)
            response = await api.refresh()
            statuses.append(200 if response.status_code == 200 else code_of(response))

        assert statuses == [200] * in_time + ["refresh_token_invalid"]


class TestTermination:
    """V7.4.1 (logout), V7.4.2 (deleted user), V7.4.3 (password change)."""

    async def test_logout_ends_the_session_at_once(self, api: AuthApi, user):
        cookie = api.refresh_cookie

        await api.logout()
        api.put_refresh_cookie(cookie)
        refresh = await api.refresh()
        me = await api.client.get("/auth/me", headers=user.auth)

        assert code_of(refresh) == "refresh_token_invalid"
        assert me.status_code == 401

    async def test_a_deleted_users_refresh_fails(self, app, api: AuthApi, user):
        await app.state.services.identity.store.delete_user(user.id)

        refresh = await api.refresh()
        me = await api.client.get("/auth/me", headers=user.auth)

        assert code_of(refresh) == "refresh_token_invalid"
        assert me.status_code == 401

    async def test_a_password_change_ends_the_other_sessions(
        self, app, make_api, api: AuthApi, user
    ):
        """The session that changed the password stays; every other one ends."""
        other = AuthApi(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        )
        assert (await other.signin(user.email)).status_code == 200
        identity = app.state.services.identity
        claims = await identity.verify_access_token(user.access_token)

        await EmbeddedGoTrue(identity).update_user(claims, password="a brand new passphrase")
        other_refresh = await other.refresh()
        own_refresh = await api.refresh()
        await other.client.aclose()

        assert code_of(other_refresh) == "refresh_token_invalid"
        assert own_refresh.status_code == 200
        assert (await api.signin(user.email, password="a brand new passphrase")).status_code == 200
