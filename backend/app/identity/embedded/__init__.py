"""The embedded identity provider: users, sessions and refresh tokens in the app's own database.

provider.py   the `IdentityProvider` protocol's methods, and the session rules they keep
store.py      every statement on users, sessions and refresh tokens (the service role)
gotrue.py     what GoTrue's HTTP API needs beyond the protocol
pkce.py       GoTrue's PKCE flow: challenges, verifiers, flow-state lifetime, its refusals
"""

from __future__ import annotations

from .gotrue import (
    GENERATE_LINK_TYPES,
    VERIFY_TYPES,
    AuthCode,
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
from .pkce import (
    PKCE_PREFIX,
    BadCodeVerifier,
    CodeChallenge,
    FlowStateExpired,
    FlowStateNotFound,
    PkceError,
    PkceParamsInvalid,
    parse_code_challenge,
)
from .provider import EmbeddedIdentityProvider, VerifyLinks
from .store import EMAIL_PROVIDER_METADATA, IdentityStore, UserRecord, obfuscated

__all__ = [
    "EMAIL_PROVIDER_METADATA",
    "GENERATE_LINK_TYPES",
    "PKCE_PREFIX",
    "VERIFY_TYPES",
    "AuthCode",
    "BadCodeVerifier",
    "CodeChallenge",
    "EmailChangePending",
    "EmailUnconfirmed",
    "EmbeddedGoTrue",
    "EmbeddedIdentityProvider",
    "FlowStateExpired",
    "FlowStateNotFound",
    "GeneratedLink",
    "GoTrueSession",
    "IdentityStore",
    "LinkRefused",
    "NonceInvalid",
    "NonceRequired",
    "PkceError",
    "PkceParamsInvalid",
    "SessionUser",
    "SignUpsNotAllowed",
    "Unconfirmed",
    "UserRecord",
    "VerifyLinks",
    "obfuscated",
    "parse_code_challenge",
]
