"""Access tokens: Supabase-shaped JWTs, the signing key, its JWKS, and local verification.

The embedded provider signs with an EC P-256 key (ES256), as current Supabase projects do, so a
verifier only ever needs the public JWKS. Tokens signed with Supabase's legacy HS256 JWT secret are
accepted where that secret is configured. The algorithm always comes from the server's key, never
from the token's header: that closes the `alg: none` and RS/HS confusion attacks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from backend.app.core.claims import AccessClaims

__all__ = [
    "AccessClaims",
    "IssuedAccessToken",
    "JwksKeys",
    "KeySource",
    "SigningKeysUnavailable",
    "StaticKeys",
    "TokenInvalid",
    "TokenSigner",
    "TokenVerifier",
]

AUDIENCE = "authenticated"
ROLE = "authenticated"
# Tokens this app issued are checked with at most this clock skew (README, "Tokens and sessions").
LEEWAY_SECONDS = 1


class TokenInvalid(Exception):
    """The token is malformed, forged, expired, or for another audience or issuer."""


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

    def issue(
        self,
        *,
        user_id: str,
        email: str,
        session_id: str,
        user_metadata: dict[str, Any] | None = None,
        app_metadata: dict[str, Any] | None = None,
        signed_in_at: int | None = None,
    ) -> IssuedAccessToken:
        """A token with GoTrue's claims (`AccessTokenClaims`): the metadata as the user's record
        had it at issue, and `amr` naming the password sign-in that started the session at
        `signed_in_at` (which a refresh keeps)."""
        now = int(time.time())
        expires_at = now + self.ttl_seconds
        claims = {
            "sub": user_id,
            "email": email,
            "phone": "",
            "app_metadata": app_metadata or {},
            "user_metadata": user_metadata or {},
            "role": ROLE,
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": signed_in_at or now}],
            "aud": AUDIENCE,
            "iss": self.issuer,
            "iat": now,
            "exp": expires_at,
            "session_id": session_id,
            "is_anonymous": False,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(
            claims, self._private_key, algorithm="ES256", headers={"kid": self.key_id}
        )
        return IssuedAccessToken(token=token, expires_in=self.ttl_seconds, expires_at=expires_at)

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {"keys": [{**jwk, "kid": self.key_id, "alg": "ES256", "use": "sig"}]}


class SigningKeysUnavailable(Exception):
    """The keys that verify tokens cannot be had right now (the provider's JWKS is unreachable):
    a token cannot be judged, which is not the same as a bad token."""


class KeySource(Protocol):
    """Where the verifier finds the public key for a token's `kid`."""

    async def key(self, kid: str | None) -> tuple[Any, str]:
        """The key and its algorithm.

        Raises:
            TokenInvalid: no key has this `kid`.
            SigningKeysUnavailable: the keys could not be fetched.
        """
        ...


class StaticKeys:
    """One public key known at start-up: the embedded provider's own."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, key_id: str):
        self._key = (public_key, "ES256")
        self._key_id = key_id

    async def key(self, kid: str | None) -> tuple[Any, str]:
        if kid is not None and kid != self._key_id:
            raise TokenInvalid("unknown signing key")
        return self._key


# Algorithms a JWKS may name; never HS*, whose "public key" would be the shared secret.
_ASYMMETRIC = {"ES256", "RS256"}


class JwksKeys:
    """The keys a provider publishes at a JWKS URL: fetched on first use, kept, and fetched again
    when a token names an unknown `kid` (key rotation), at most every `refetch_seconds`."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_seconds: float = 5.0,
        refetch_seconds: float = 5.0,
    ):
        self._url = url
        self._headers = headers or {}
        self._timeout = timeout_seconds
        self._refetch_seconds = refetch_seconds
        self._keys: dict[str, tuple[Any, str]] = {}
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> tuple[Any, str]:
        if kid is None:
            raise TokenInvalid("token names no signing key")
        if kid not in self._keys:
            await self._refetch()
        if kid not in self._keys:
            raise TokenInvalid("unknown signing key")
        return self._keys[kid]

    async def _refetch(self) -> None:
        async with self._lock:  # one fetch at a time; the others use its result
            if time.monotonic() - self._fetched_at < self._refetch_seconds:
                return
            try:
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    response = await client.get(self._url, headers=self._headers)
                    response.raise_for_status()
                    document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise SigningKeysUnavailable(type(exc).__name__) from exc
            if not (isinstance(document, dict) and isinstance(document.get("keys"), list)):
                # Not a JWKS (a proxy's page, another service): no verdict on any token, and the
                # keys already known stay, rather than every live token turning 401.
                raise SigningKeysUnavailable("not a JWKS")
            self._keys = _parse_jwks(document)
            self._fetched_at = time.monotonic()


def _parse_jwks(document: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    keys: dict[str, tuple[Any, str]] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        try:
            parsed = jwt.PyJWK(jwk)
        except jwt.PyJWTError:
            continue  # a key of a kind we do not verify with; others may still serve
        if parsed.algorithm_name in _ASYMMETRIC:
            keys[jwk["kid"]] = (parsed.key, parsed.algorithm_name)
    return keys


class TokenVerifier:
    """Verifies access tokens locally: signature, `exp`, `aud`, `iss`, required claims.

    The keys come from a `KeySource` (the embedded signer's key, or a provider's JWKS); tokens
    without a `kid` are Supabase's legacy HS256 ones, accepted only when that secret is set.
    Verified claims are cached by the exact token string (bounded, LRU) so a token used on many
    requests is checked cryptographically once; `exp` is still compared on every hit.
    """

    _REQUIRED = ("sub", "exp", "iat", "aud", "iss", "session_id")

    def __init__(
        self,
        *,
        keys: KeySource,
        issuer: str,
        legacy_hs256_secret: str | None = None,
        cache_size: int = 4096,
    ):
        self._keys = keys
        self._legacy = (legacy_hs256_secret, "HS256") if legacy_hs256_secret else None
        self._issuer = issuer
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str) -> AccessClaims:
        """Return the token's verified claims.

        Raises:
            TokenInvalid: for any reason the token cannot be trusted; the reason is not a secret,
                but the token itself never goes into the message.
            SigningKeysUnavailable: the keys to judge it could not be fetched.
        """
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + LEEWAY_SECONDS <= now:
                del self._cache[token]
                raise TokenInvalid("token expired")
            self._cache.move_to_end(token)
            return cached
        claims = self._decode(token, *await self._key_for(token))
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    async def _key_for(self, token: str) -> tuple[Any, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("malformed token") from exc
        kid = header.get("kid")
        if kid is None and self._legacy is not None:
            return self._legacy
        return await self._keys.key(kid)

    def _decode(self, token: str, key: Any, algorithm: str) -> AccessClaims:
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
            token=token,
        )
