"""A GoTrue-compatible server on loopback: this app, embedded, with GOTRUE_API_ENABLED.

It stands in for a Supabase project wherever AUTH_PROVIDER=supabase is tested: the supabase
provider, supabase-py and supabase-js all talk to it over real HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from backend.app.core.settings import Settings
from backend.app.main import create_app
from backend.tests.helpers import free_port
from backend.tests.live_server import live_server

ANON_KEY = "test-anon-key"
SERVICE_ROLE_KEY = "test-service-role-key"


@contextmanager
def gotrue_server(make_settings: Callable[..., Settings], **overrides: Any) -> Iterator[str]:
    """Serve the GoTrue-compatible API; yields the project URL (the API is at URL/auth/v1).

    Its tokens name it as their issuer (URL/auth/v1), as Supabase's do. Every request of a test
    comes from loopback, so its own sign-in limits are out of the way; the app under test
    still applies its own. The project is set up as the README asks of a real one for the
    supabase provider: "Secure email change" off (GoTrue's default, and this stand-in's, is
    on), unless `overrides` say otherwise.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    project = {
        "gotrue_api_enabled": True,
        "jwt_issuer": f"{url}/auth/v1",
        "supabase_anon_key": ANON_KEY,
        "supabase_service_role_key": SERVICE_ROLE_KEY,
        "rate_limit_signin_per_account": "100000/minute",
        "rate_limit_signin_per_address": "100000/minute",
        "gotrue_mailer_secure_email_change_enabled": False,
    }
    settings = make_settings(**(project | overrides))
    with live_server(create_app(settings), port=port, log_level="warning") as base_url:
        assert base_url == url
        yield url


def supabase_settings(url: str) -> dict[str, Any]:
    """The settings that point an app at the project served by `gotrue_server`."""
    return {
        "auth_provider": "supabase",
        "supabase_url": url,
        "supabase_anon_key": ANON_KEY,
        "supabase_service_role_key": SERVICE_ROLE_KEY,
    }
