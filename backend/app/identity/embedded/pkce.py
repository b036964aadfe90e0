"""GoTrue's PKCE flow for the lifecycle's mails (GoTrue `internal/api/pkce.go`,
`internal/models/flow_state.go`, `internal/security/pkce.go`).

A mail asked for with a `code_challenge` stores a flow state (the challenge, its method, the
user, the kind of link) and its link's token carries GoTrue's `pkce_` prefix. Following that
link (`GET /verify`) spends the token as any link's, then gives the browser an auth code
(`?code=`) instead of a session; only the client that holds the verifier can exchange it
(`POST /token?grant_type=pkce`), once, within `FLOW_STATE_LIFETIME`.

    PkceError
     ├── PkceParamsInvalid    a request's code_challenge / code_challenge_method (400)
     ├── FlowStateNotFound    unknown, spent or never-issued code; the user went away (404)
     ├── FlowStateExpired     older than FLOW_STATE_LIFETIME (422)
     └── BadCodeVerifier      the verifier does not match the challenge (400)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "AUTHENTICATION_METHODS",
    "FLOW_STATE_LIFETIME",
    "PKCE_PREFIX",
    "BadCodeVerifier",
    "CodeChallenge",
    "FlowStateExpired",
    "FlowStateNotFound",
    "PkceError",
    "PkceParamsInvalid",
    "flow_state_expired",
    "parse_code_challenge",
    "verifier_matches",
]

# GoTrue `pkce.go`: the prefix of a PKCE link's token, and RFC 7636's bounds of a challenge.
PKCE_PREFIX = "pkce_"
_MIN_CHALLENGE_LENGTH = 43
_MAX_CHALLENGE_LENGTH = 128
_CHALLENGE_PATTERN = re.compile(r"[a-zA-Z._~0-9-]+")
# GoTrue `conf/configuration.go` `defaultFlowStateExpiryDuration` (also its minimum).
FLOW_STATE_LIFETIME = timedelta(seconds=300)
# GoTrue `models.ParseAuthenticationMethod` of a verification type (a `*signup` type is
# `email/signup`): the flow state a followed link of that type looks for. GoTrue makes none for
# an invitation, so an `invite` one is never found; `email` names none at all.
AUTHENTICATION_METHODS = {
    "signup": "email/signup",
    "invite": "invite",
    "recovery": "recovery",
    "magiclink": "magiclink",
    "email_change": "email_change",
}
_MAGICLINK = "magiclink"


class PkceError(Exception):
    """Root of the PKCE flow's refusals; each carries GoTrue's message."""

    message = ""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class PkceParamsInvalid(PkceError):
    """GoTrue `validatePKCEParams`, `isValidCodeChallenge` (and the method, see
    `parse_code_challenge`)."""


class FlowStateNotFound(PkceError):
    message = "invalid flow state, no valid flow state found"


class FlowStateExpired(PkceError):
    message = "invalid flow state, flow state has expired"


class BadCodeVerifier(PkceError):
    """Names the user whose code it was (for the security event, never for the caller)."""

    message = "code challenge does not match previously saved code verifier"

    def __init__(self, *, user_id: str):
        super().__init__()
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class CodeChallenge:
    """A client's challenge and its method, `s256` or `plain` (GoTrue's lower-case names).
    With `plain` the challenge is the verifier itself: the repr shows neither."""

    value: str
    method: str

    def __repr__(self) -> str:
        return f"CodeChallenge(method={self.method!r})"


def parse_code_challenge(challenge: str | None, method: str | None) -> CodeChallenge | None:
    """A request's PKCE parameters: None for the implicit flow (neither given).

    Raises:
        PkceParamsInvalid: only one of the two given, a challenge outside RFC 7636's length or
            alphabet (GoTrue's messages), or a method other than `s256`/`plain`. GoTrue finds
            the last only when it stores the flow state, as a 500 (and for `/recover` only when
            the address is known); here it is refused up front, for every address alike.
    """
    if not challenge and not method:
        return None
    if not challenge or not method:
        raise PkceParamsInvalid("PKCE flow requires code_challenge_method and code_challenge")
    if not _MIN_CHALLENGE_LENGTH <= len(challenge) <= _MAX_CHALLENGE_LENGTH:
        raise PkceParamsInvalid(
            f"code challenge has to be between {_MIN_CHALLENGE_LENGTH} and "
            f"{_MAX_CHALLENGE_LENGTH} characters"
        )
    if not _CHALLENGE_PATTERN.fullmatch(challenge):
        raise PkceParamsInvalid(
            "code challenge can only contain alphanumeric characters, hyphens, periods, "
            "underscores and tildes"
        )
    normalized = method.lower()
    if normalized not in ("s256", "plain"):
        raise PkceParamsInvalid("code challenge method not supported")
    return CodeChallenge(value=challenge, method=normalized)


def verifier_matches(challenge: CodeChallenge, verifier: str) -> bool:
    """GoTrue `security.VerifyPKCEChallenge`: `s256` compares the verifier's unpadded
    base64url SHA-256 with the challenge, `plain` the verifier itself; in constant time."""
    presented = verifier.encode()
    if challenge.method == "s256":
        digest = hashlib.sha256(presented).digest()
        presented = base64.urlsafe_b64encode(digest).rstrip(b"=")
    return hmac.compare_digest(presented, challenge.value.encode())


def flow_state_expired(
    *,
    authentication_method: str,
    created_at: datetime,
    auth_code_issued_at: datetime | None,
    now: datetime,
) -> bool:
    """GoTrue `FlowState.IsExpired`: a magic link's counts from when its code was issued, any
    other from when the flow state was made (the mail was asked for)."""
    start = created_at
    if authentication_method == _MAGICLINK and auth_code_issued_at is not None:
        start = auth_code_issued_at
    return now > start + FLOW_STATE_LIFETIME
