"""The session service under both APIs: `/auth` and `/auth/v1` keep one budget and one log of
attempts (`identity/sessions.py`)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from backend.tests.helpers import AuthApi, unique_email
from backend.tests.security.conftest import security_events


def fields(record: logging.LogRecord, *names: str) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in names)


class TestOneSignInPolicy:
    async def test_sign_in_budget_is_shared_by_both_apis(self, make_gotrue):
        """One attempt through each API spends the same per-account budget of two."""
        gotrue = await make_gotrue(rate_limit_signin_per_account="2/minute")
        api = AuthApi(gotrue.client)
        email = unique_email()
        await gotrue.session(email)

        through_auth = await api.signin(email, "a wrong passphrase")
        through_gotrue = await gotrue.sign_in(email, "a wrong passphrase")
        limited_auth = await api.signin(email)
        limited_gotrue = await gotrue.sign_in(email)

        assert through_auth.status_code == 401
        assert through_gotrue.json()["code"] == "invalid_credentials"
        assert limited_auth.status_code == 429
        assert limited_auth.json()["code"] == "rate_limited"
        assert limited_gotrue.status_code == 429
        assert limited_gotrue.json()["code"] == "over_request_rate_limit"
        assert int(limited_gotrue.headers["Retry-After"]) >= 1

    async def test_a_failed_sign_in_is_the_same_event_through_either_api(self, gotrue, caplog):
        """Both log `signin_failed` with the account's pseudonym and the address, nothing else."""
        api = AuthApi(gotrue.client)
        email = unique_email()
        await gotrue.session(email)
        caplog.set_level("INFO")

        await api.signin(email, "a wrong passphrase")
        await gotrue.sign_in(email, "a wrong passphrase")

        by_auth, by_gotrue = security_events(caplog, "signin_failed")
        names = ("account", "address", "reason")
        assert fields(by_auth, *names) == fields(by_gotrue, *names)
        assert fields(by_auth, "reason") == ("auth_invalid_credentials",)
        assert email not in caplog.text

    async def test_a_limited_sign_in_is_the_same_event_through_either_api(
        self, make_gotrue, caplog
    ):
        gotrue = await make_gotrue(rate_limit_signin_per_account="1/minute")
        api = AuthApi(gotrue.client)
        email = unique_email()
        await gotrue.session(email)
        caplog.set_level("INFO")

        await api.signin(email)
        await api.signin(email)
        await gotrue.sign_in(email)

        events = security_events(caplog, "rate_limited")
        assert [fields(event, "reason") for event in events] == [("signin",)] * 2


class TestOneRefreshPolicy:
    async def test_refresh_budget_is_shared_by_both_apis(self, make_gotrue, caplog):
        """Guessed refresh tokens spend one per-address budget, whichever API they are sent to,
        and the next is 429 with `Retry-After` on both (GoTrue limits `/token` per address)."""
        gotrue = await make_gotrue(rate_limit_refresh_per_address="2/minute")
        api = AuthApi(gotrue.client)
        caplog.set_level("INFO")

        guessed = await gotrue.refresh(secrets.token_urlsafe(32))
        api.put_refresh_cookie(secrets.token_urlsafe(32))
        guessed_cookie = await api.refresh()
        limited_gotrue = await gotrue.refresh(secrets.token_urlsafe(32))
        api.put_refresh_cookie(secrets.token_urlsafe(32))  # the 401 above cleared it
        limited_auth = await api.refresh()

        assert guessed.json()["code"] == "refresh_token_not_found"
        assert guessed_cookie.json()["code"] == "refresh_token_invalid"
        assert limited_gotrue.status_code == 429
        assert limited_gotrue.json()["code"] == "over_request_rate_limit"
        assert limited_auth.status_code == 429
        assert int(limited_auth.headers["Retry-After"]) >= 1
        events = security_events(caplog, "rate_limited")
        assert [fields(event, "reason") for event in events] == [("refresh",)] * 2

    async def test_a_limited_refresh_keeps_the_cookie(self, make_gotrue):
        """A 429 says "later", not "signed out": the browser keeps its refresh cookie."""
        gotrue = await make_gotrue(rate_limit_refresh_per_address="1/minute")
        api = AuthApi(gotrue.client)
        email = unique_email()
        await gotrue.session(email)
        await api.signin(email)
        assert (await api.refresh()).status_code == 200

        limited = await api.refresh()

        assert limited.status_code == 429
        assert "sb_refresh_token" not in limited.headers.get("set-cookie", "")
        assert api.refresh_cookie is not None

    async def test_a_replayed_token_through_gotrue_is_logged_as_reuse(self, make_gotrue, caplog):
        """The replay that revokes a session is a security event through GoTrue's API too."""
        gotrue = await make_gotrue(refresh_reuse_interval_seconds=0)
        session = await gotrue.session()
        assert (await gotrue.refresh(session["refresh_token"])).status_code == 200
        caplog.set_level("INFO")

        replayed = await gotrue.refresh(session["refresh_token"])

        assert replayed.json()["code"] == "refresh_token_already_used"
        [event] = security_events(caplog, "refresh_token_reused")
        assert fields(event, "reason") == ("refresh_token_reused",)
