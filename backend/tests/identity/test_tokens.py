"""Access tokens: Supabase's claims, ES256 from the server's key, strict local verification."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from backend.app.identity.tokens import (
    JwksKeys,
    SigningKeysUnavailable,
    StaticKeys,
    TokenInvalid,
    TokenSigner,
    TokenVerifier,
)

ISSUER = "http://localhost:8000/auth/v1"


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(
        private_key=ec.generate_private_key(ec.SECP256R1()), issuer=ISSUER, ttl_seconds=900
    )


@pytest.fixture
def verifier(signer) -> TokenVerifier:
    return TokenVerifier(
        keys=StaticKeys(signer.public_key, signer.key_id),
        issuer=ISSUER,
        legacy_hs256_secret="legacy-secret-of-supabase-project",
    )


def forge(signer: TokenSigner, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "11111111-1111-1111-1111-111111111111",
        "email": "a@example.com",
        "role": "authenticated",
        "aud": "authenticated",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 60,
        "session_id": "s",
    }
    return {k: v for k, v in (claims | overrides).items() if v is not None}


class TestTokenSigner:
    async def test_issued_token_has_supabase_claims(self, signer, verifier):
        issued = signer.issue(user_id="u1", email="a@example.com", session_id="s1")

        claims = (await verifier.verify(issued.token)).raw

        assert claims["sub"] == "u1"
        assert claims["role"] == "authenticated"
        assert claims["aud"] == "authenticated"
        assert claims["iss"] == ISSUER
        assert claims["session_id"] == "s1"
        assert claims["exp"] - claims["iat"] == 900
        assert jwt.get_unverified_header(issued.token)["alg"] == "ES256"

    async def test_issued_token_stays_out_of_its_repr(self, signer):
        """A repr ends up in tracebacks and debug logs; a bearer token must not."""
        issued = signer.issue(user_id="u1", email="a@example.com", session_id="s1")

        assert issued.token not in repr(issued)

    async def test_jwks_verifies_issued_tokens(self, signer):
        """A third party holding only the JWKS can verify our tokens."""
        issued = signer.issue(user_id="u1", email="a@example.com", session_id="s1")
        jwk = signer.jwks()["keys"][0]

        key = jwt.PyJWK(jwk)
        claims = jwt.decode(issued.token, key, algorithms=["ES256"], audience="authenticated")

        assert jwk["kid"] == signer.key_id
        assert "d" not in jwk  # never the private part
        assert claims["sub"] == "u1"


class TestTokenVerifier:
    async def test_token_expired_more_than_one_second_ago_is_refused(self, signer, verifier):
        now = int(time.time())
        token = jwt.encode(
            forge(signer, iat=now - 100, exp=now - 2),
            signer._private_key,
            algorithm="ES256",
            headers={"kid": signer.key_id},
        )

        with pytest.raises(TokenInvalid):
            await verifier.verify(token)

    @pytest.mark.parametrize(
        "overrides", [{"aud": "anon"}, {"iss": "https://evil.example"}, {"session_id": None}]
    )
    async def test_wrong_audience_issuer_or_missing_claim_is_refused(
        self, signer, verifier, overrides
    ):
        token = jwt.encode(
            forge(signer, **overrides),
            signer._private_key,
            algorithm="ES256",
            headers={"kid": signer.key_id},
        )

        with pytest.raises(TokenInvalid):
            await verifier.verify(token)

    async def test_alg_none_is_refused(self, signer, verifier):
        token = jwt.encode(forge(signer), "", algorithm="none", headers={"kid": signer.key_id})

        with pytest.raises(TokenInvalid):
            await verifier.verify(token)

    async def test_token_signed_by_another_key_is_refused(self, signer, verifier):
        other = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(forge(signer), other, algorithm="ES256", headers={"kid": signer.key_id})

        with pytest.raises(TokenInvalid):
            await verifier.verify(token)

    async def test_hs256_signed_with_public_key_bytes_is_refused(self, signer, verifier):
        """Algorithm confusion: the alg comes from our key (ES256), never from the header."""
        from cryptography.hazmat.primitives import serialization

        public_pem = signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = _hs256_by_hand(forge(signer), key=public_pem, kid=signer.key_id)

        with pytest.raises(TokenInvalid):
            await verifier.verify(token)

    async def test_legacy_hs256_with_configured_secret_is_accepted(self, signer, verifier):
        """Supabase's legacy JWT secret, where configured: no kid, HS256."""
        token = jwt.encode(forge(signer), "legacy-secret-of-supabase-project", algorithm="HS256")

        assert (await verifier.verify(token)).user_id == "11111111-1111-1111-1111-111111111111"

    async def test_legacy_hs256_without_configured_secret_is_refused(self, signer):
        verifier = TokenVerifier(keys=StaticKeys(signer.public_key, signer.key_id), issuer=ISSUER)
        token = jwt.encode(forge(signer), "legacy-secret-of-supabase-project", algorithm="HS256")

        with pytest.raises(TokenInvalid):
            await verifier.verify(token)

    async def test_cached_token_is_still_refused_after_exp(self, signer, verifier, monkeypatch):
        """The claims cache never extends a token's life."""
        issued = signer.issue(user_id="u1", email="a@example.com", session_id="s1")
        await verifier.verify(issued.token)
        later = issued.expires_at + 2
        monkeypatch.setattr(time, "time", lambda: later)

        with pytest.raises(TokenInvalid):
            await verifier.verify(issued.token)


def _hs256_by_hand(claims: dict[str, Any], *, key: bytes, kid: str) -> str:
    """PyJWT refuses to sign HS256 with a PEM key; an attacker's tooling does not."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing_input = ".".join(
        b64(json.dumps(part).encode()) for part in ({"alg": "HS256", "kid": kid}, claims)
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


class JwksServer:
    """A JWKS on loopback whose keys a test can rotate; counts the fetches it answers."""

    def __init__(self, *signers: TokenSigner):
        self.signers = list(signers)
        self.fetches = 0

    async def __aenter__(self) -> str:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            self.fetches += 1
            keys = [key for signer in self.signers for key in signer.jwks()["keys"]]
            body = json.dumps({"keys": keys}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()

        self._server = await asyncio.start_server(answer, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/jwks.json"

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        await self._server.wait_closed()


def _signer() -> TokenSigner:
    return TokenSigner(
        private_key=ec.generate_private_key(ec.SECP256R1()), issuer=ISSUER, ttl_seconds=900
    )


class TestJwksKeys:
    async def test_keys_are_fetched_once_and_kept(self, signer):
        jwks = JwksServer(signer)
        async with jwks as url:
            verifier = TokenVerifier(keys=JwksKeys(url), issuer=ISSUER)
            for _ in range(3):
                token = signer.issue(user_id="u1", email="a@example.com", session_id="s1").token
                await verifier.verify(token)

        assert jwks.fetches == 1

    async def test_an_unknown_kid_fetches_the_rotated_keys(self, signer):
        """Key rotation: a token signed by a key published after the first fetch verifies."""
        jwks = JwksServer(signer)
        async with jwks as url:
            verifier = TokenVerifier(keys=JwksKeys(url, refetch_seconds=0), issuer=ISSUER)
            await verifier.verify(signer.issue(user_id="u", email="e", session_id="s").token)
            rotated = _signer()
            jwks.signers.append(rotated)
            claims = await verifier.verify(
                rotated.issue(user_id="u2", email="e", session_id="s").token
            )

        assert claims.user_id == "u2"
        assert jwks.fetches == 2

    async def test_unknown_kids_fetch_at_most_once_per_interval(self, signer):
        """Tokens naming made-up kids cannot make this server hammer the provider's JWKS."""
        jwks = JwksServer(signer)
        async with jwks as url:
            verifier = TokenVerifier(keys=JwksKeys(url, refetch_seconds=60), issuer=ISSUER)
            for _ in range(5):
                with pytest.raises(TokenInvalid):
                    await verifier.verify(
                        _signer().issue(user_id="u", email="e", session_id="s").token
                    )

        assert jwks.fetches == 1

    async def test_an_unreachable_jwks_is_keys_unavailable_not_an_invalid_token(self, signer):
        verifier = TokenVerifier(keys=JwksKeys("http://127.0.0.1:1/jwks.json"), issuer=ISSUER)

        with pytest.raises(SigningKeysUnavailable):
            await verifier.verify(signer.issue(user_id="u", email="e", session_id="s").token)
