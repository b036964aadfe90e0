"""Access tokens: Supabase-shaped JWTs, the signing key, its JWKS, and local verification.

The embedded provider signs with an EC P-256 key (ES256), as current Supabase projects do, so a
verifier only ever needs the public JWKS. Tokens signed with Supabase's legacy HS256 JWT secret are
accepted where that secret is configured. The algorithm always comes from the server's key, never
from the token's header: that closes the `alg: none` and RS/HS confusion attacks.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "AccessClaims",
    "IssuedAccessToken",
    "TokenInvalid",
    "TokenSigner",
    "TokenVerifier",
]

AUDIENCE = "authenticated"
ROLE = "authenticated"
# Tokens this app issued are checked with at most this clock skew (DESIGN.md §11).
LEEWAY_SECONDS = 1


class TokenInvalid(Exception):
    """The token is malformed, forged, expired, or for another audience or issuer."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims a request is allowed to act on."""

    user_id: str
    email: str
    session_id: str
    expires_at: int
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str = field(repr=False)  # a bearer credential: never in a repr, log or traceback
    expires_in: int
    expires_at: int


def _key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


class TokenSigner:
    """Issues access tokens with Supabase's claims, signed ES256 with one private key."""

    def __init__(self, *, private_key: ec.EllipticCurvePrivateKey, issuer: str, ttl_seconds: int):
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = _key_id(self.public_key)
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds

    def issue(self, *, user_id: str, email: str, session_id: str) -> IssuedAccessToken:
        now = int(time.time())
        expires_at = now + self.ttl_seconds
        claims = {
            "sub": user_id,
            "email": email,
            "role": ROLE,
            "aud": AUDIENCE,
            "iss": self.issuer,
            "iat": now,
            "exp": expires_at,
            "session_id": session_id,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(
            claims, self._private_key, algorithm="ES256", headers={"kid": self.key_id}
        )
        return IssuedAccessToken(token=token, expires_in=self.ttl_seconds, expires_at=expires_at)

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {"keys": [{**jwk, "kid": self.key_id, "alg": "ES256", "use": "sig"}]}


class TokenVerifier:
    """Verifies access tokens locally: signature, `exp`, `aud`, `iss`, required claims.

    Verified claims are cached by the exact token string (bounded, LRU) so a token used on many
    requests is checked cryptographically once; `exp` is still compared on every hit.
    """

    _REQUIRED = ("sub", "exp", "iat", "aud", "iss", "session_id")

    def __init__(
        self,
        *,
        signer: TokenSigner,
        legacy_hs256_secret: str | None = None,
        cache_size: int = 4096,
    ):
        self._keys: dict[str, tuple[Any, str]] = {signer.key_id: (signer.public_key, "ES256")}
        self._default_key = self._keys[signer.key_id]
        self._legacy = (legacy_hs256_secret, "HS256") if legacy_hs256_secret else None
        self._issuer = signer.issuer
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str) -> AccessClaims:
        """Return the token's verified claims.

        Raises:
            TokenInvalid: for any reason the token cannot be trusted; the reason is not a secret,
                but the token itself never goes into the message.
        """
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + LEEWAY_SECONDS <= now:
                del self._cache[token]
                raise TokenInvalid("token expired")
            self._cache.move_to_end(token)
            return cached
        claims = self._decode(token)
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    def _select_key(self, token: str) -> tuple[Any, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("malformed token") from exc
        kid = header.get("kid")
        if kid is not None:
            if kid not in self._keys:
                raise TokenInvalid("unknown signing key")
            return self._keys[kid]
        # Supabase's legacy tokens carry no kid; they are HS256 with the project's JWT secret.
        return self._legacy or self._default_key

    def _decode(self, token: str) -> AccessClaims:
        key, algorithm = self._select_key(token)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=AUDIENCE,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(self._REQUIRED)},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(type(exc).__name__) from exc
        return AccessClaims(
            user_id=str(payload["sub"]),
            email=str(payload.get("email", "")),
            session_id=str(payload["session_id"]),
            expires_at=int(payload["exp"]),
            raw=payload,
        )
