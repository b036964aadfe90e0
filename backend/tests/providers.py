"""Run a test module under both identity providers: `from backend.tests.providers import
both_identity_providers  # noqa: F401` overrides the `identity_provider` fixture there."""

from __future__ import annotations

import pytest

__all__ = ["both_identity_providers"]


@pytest.fixture(name="identity_provider", params=["embedded", "supabase"])
def both_identity_providers(request: pytest.FixtureRequest) -> str:
    """The embedded provider, then AUTH_PROVIDER=supabase against a GoTrue-compatible server:
    the contract must not tell them apart."""
    provider: str = request.param
    return provider
