"""Enumeration and brute force (ASVS 5.0 V6.3.1, V6.3.8, V16.3.1, V16.3.3)."""

from __future__ import annotations

import pytest

from backend.app.identity import passwords
from backend.tests.helpers import AuthApi, unique_email
from backend.tests.security.conftest import log_text, security_events


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


class CountingHasher:
    """The real hasher, counting full argon2 verifies."""

    def __init__(self, hasher) -> None:
        self._hasher = hasher
        self.verifies: list[str] = []

    def __getattr__(self, name):
        return getattr(self._hasher, name)

    def verify(self, password_hash, password):
        self.verifies.append(password_hash.split("$")[3])  # the parameters: m=…,t=…,p=…
        return self._hasher.verify(password_hash, password)


class TestNoEnumeration:
    """V6.3.8: an unknown email and a wrong password look and cost the same."""

    async def test_same_status_body_and_headers(self, api: AuthApi):
        email = unique_email()
        await api.signup(email)

        wrong = await api.signin(email, password="not the right one")
        unknown = await api.signin(unique_email(), password="not the right one")

        assert wrong.status_code == unknown.status_code == 401
        assert wrong.content == unknown.content
        assert sorted(wrong.headers.items()) == sorted(unknown.headers.items())

    async def test_one_full_argon2_verify_with_the_same_parameters_on_both_paths(
        self, api: AuthApi, monkeypatch
    ):
        """Deterministic: the count of full hashes, not a stopwatch (see bench/ for latencies)."""
        email = unique_email()
        await api.signup(email)
        counting = CountingHasher(passwords._hasher)
        monkeypatch.setattr(passwords, "_hasher", counting)

        await api.signin(email, password="not the right one")
        wrong = list(counting.verifies)
        counting.verifies.clear()
        await api.signin(unique_email(), password="not the right one")
        unknown = list(counting.verifies)

        assert len(wrong) == len(unknown) == 1
        assert wrong == unknown  # same memory, time and parallelism: the same cost

    async def test_a_failure_is_a_security_event_naming_account_and_address(
        self, api: AuthApi, caplog
    ):
        """V16.3.1: the address and a pseudonym of the account; never the email or password."""
        email = unique_email()
        await api.signup(email)

        await api.signin(email, password="not the right one")

        [event] = security_events(caplog, "signin_failed")
        assert event.address == "127.0.0.1"  # type: ignore[attr-defined]
        assert len(event.account) == 16  # type: ignore[attr-defined]
        text = log_text(caplog.records)
        assert email not in text
        assert "not the right one" not in text


class TestRateLimits:
    """V6.3.1: per-account and per-address limits, with Retry-After."""

    async def test_a_limited_account_refuses_even_the_right_password(self, make_api, caplog):
        api = await make_api(rate_limit_signin_per_account="3/minute")
        email = unique_email()
        await api.signup(email)
        for _ in range(3):
            await api.signin(email, password="guess guess guess")

        limited = await api.signin(email)

        assert limited.status_code == 429
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "accessToken" not in limited.text
        [event] = security_events(caplog, "rate_limited")
        assert event.reason == "signin"  # type: ignore[attr-defined]
        assert event.address == "127.0.0.1"  # type: ignore[attr-defined]

    async def test_the_per_address_limit_spans_accounts(self, make_api, caplog):
        api = await make_api(rate_limit_signin_per_address="4/minute")

        statuses = [(await api.signin(unique_email())).status_code for _ in range(5)]

        assert statuses == [401, 401, 401, 401, 429]
        assert security_events(caplog, "rate_limited")

    async def test_the_per_address_limit_covers_sign_up(self, make_api, caplog):
        api = await make_api(rate_limit_signin_per_address="2/minute")

        statuses = [(await api.signup(unique_email())).status_code for _ in range(3)]

        assert statuses == [201, 201, 429]
        [event] = security_events(caplog, "rate_limited")
        assert event.reason == "signup"  # type: ignore[attr-defined]
