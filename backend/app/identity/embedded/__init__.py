"""The embedded identity provider: users, sessions and refresh tokens in the app's own database.

provider.py   the `IdentityProvider` protocol's methods, and the session rules they keep
store.py      every statement on users, sessions and refresh tokens (the service role)
gotrue.py     what GoTrue's HTTP API needs beyond the protocol
"""

from __future__ import annotations

from .gotrue import (
    GENERATE_LINK_TYPES,
    VERIFY_TYPES,
    EmailChangePending,
    EmailUnconfirmed,
    EmbeddedGoTrue,
    GeneratedLink,
    GoTrueSession,
    LinkRefused,
    NonceInvalid,
    NonceRequired,
    SessionUser,
    SignUpsNotAllowed,
    Unconfirmed,
)
from .provider import EmbeddedIdentityProvider, VerifyLinks
from .store import EMAIL_PROVIDER_METADATA, IdentityStore, UserRecord

__all__ = [
    "EMAIL_PROVIDER_METADATA",
    "GENERATE_LINK_TYPES",
    "VERIFY_TYPES",
    "EmailChangePending",
    "EmailUnconfirmed",
    "EmbeddedGoTrue",
    "EmbeddedIdentityProvider",
    "GeneratedLink",
    "GoTrueSession",
    "IdentityStore",
    "LinkRefused",
    "NonceInvalid",
    "NonceRequired",
    "SessionUser",
    "SignUpsNotAllowed",
    "Unconfirmed",
    "UserRecord",
    "VerifyLinks",
]
