"""The verified claims of an access token: what a request may act on, whichever provider issued it.

It lives here, below the identity providers, because the user-scoped client needs it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AccessClaims"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims a request is allowed to act on."""

    user_id: str
    email: str
    session_id: str
    expires_at: int
    raw: dict[str, Any]
    # The token itself, for a provider that must be asked about it; a credential, so never in a
    # repr, a log line or a traceback.
    token: str = field(repr=False, default="")
