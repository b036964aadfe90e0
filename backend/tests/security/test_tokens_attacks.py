"""Attacks on the access token (ASVS 5.0 V9, OWASP JWT cheat sheet), over HTTP.

Each attack sends a token to `GET /items`, which verifies it locally, and expects 401. A forged
token that differs from an accepted one in the attacked part only is the control: the
`TestControl` class shows the forging helper's tokens pass when nothing is wrong with them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.app.identity.tokens import JwksKeys, TokenSigner, TokenVerifier
from backend.tests.helpers import AuthApi


@pytest.fixture
def database_url(tmp_path) -> str:
    """Tokens are judged before any query: SQLite is enough."""
    return f"sqlite:///{tmp_path / 'app.db'}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signer_of(app: Any) -> TokenSigner:
    signer: TokenSigner = app.state.services.signer
    return signer


def claims(app: Any, **overrides: Any) -> dict[str, Any]:
    """Claims our verifier accepts; `None` removes one; a function of now gives a time relative
    to when the token is made (a time computed at collection is stale minutes later)."""
    now = int(time.time())
    overrides = {k: v(now) if callable(v) else v for k, v in overrides.items()}
    base = {
        "sub": "11111111-1111-1111-1111-111111111111",
        "email": "mallory@example.com",
        "role": "authenticated",
        "aud": "authenticated",
        "iss": signer_of(app).issuer,
        "iat": now,
        "exp": now + 600,
        "session_id": "22222222-2222-2222-2222-222222222222",
    }
    return {k: v for k, v in (base | overrides).items() if v is not None}


def es256(app: Any, payload: dict[str, Any], **headers: Any) -> str:
    """Signed with the app's own key: a valid signature, whatever the claims."""
    signer = signer_of(app)
    return jwt.encode(
        payload, signer._private_key, algorithm="ES256", headers={"kid": signer.key_id, **headers}
    )


def by_hand(header: dict[str, Any], payload: dict[str, Any], key: bytes | None, alg: str) -> str:
    """A JWS made without a library's guard rails, as an attacker's tooling makes it."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if key is None:
        return f"{signing_input}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), digest).digest())}"


async def status_of(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/items", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


class TestControl:
    async def test_a_forged_token_with_nothing_wrong_is_accepted(self, app, client):
        """The helpers forge acceptable tokens, so each refusal below is the attack's doing."""
        assert await status_of(client, es256(app, claims(app))) == 200


class TestAlgNone:
    """V9.1.1, V9.1.2: an unsigned token is never accepted, whatever the spelling of `none`."""

    @pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "none ", ""])
    @pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no-kid"])
    @pytest.mark.parametrize("signature", ["", "AAAA"], ids=["empty-sig", "junk-sig"])
    async def test_alg_none_is_refused(self, app, client, alg, with_kid, signature):
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if with_kid:
            header["kid"] = signer_of(app).key_id
        token = by_hand(header, claims(app), None, alg) + signature

        assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))


def _public_key_encodings(app: Any) -> dict[str, bytes]:
    public = signer_of(app).public_key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = signer_of(app).jwks()["keys"][0]
    return {
        "pem": pem,
        "pem-stripped": pem.strip(),
        "der": der,
        "der-base64": base64.b64encode(der),
        "x962-uncompressed": public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
        "x962-compressed": public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        ),
        "jwk-json": json.dumps(jwk).encode(),
        "jwks-json": json.dumps(signer_of(app).jwks()).encode(),
        "jwk-x": jwk["x"].encode(),
    }


class TestAlgorithmConfusion:
    """V9.1.2: HMAC tokens keyed with our public key (which anybody can fetch from the JWKS)."""

    @pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
    @pytest.mark.parametrize(
        "encoding",
        [
            "pem",
            "pem-stripped",
            "der",
            "der-base64",
            "x962-uncompressed",
            "x962-compressed",
            "jwk-json",
            "jwks-json",
            "jwk-x",
        ],
    )
    @pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no-kid"])
    async def test_hmac_keyed_with_the_public_key_is_refused(
        self, app, client, alg, encoding, with_kid
    ):
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if with_kid:
            header["kid"] = signer_of(app).key_id
        key = _public_key_encodings(app)[encoding]

        token = by_hand(header, claims(app), key, alg)

        assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))


class _Listener:
    """A TCP listener on loopback that counts connections: a fetch of `jku`/`x5u` would show."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.close()


def _attacker_key_and_cert() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class TestKeyHeaders:
    """V9.1.3: key material comes from our own configuration, never from the token's header."""

    @pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c", "all"])
    async def test_attacker_key_headers_are_ignored_and_never_fetched(
        self, app, client, listener, header
    ):
        attacker, cert = _attacker_key_and_cert()
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
        headers: dict[str, Any] = {
            "jwk": {"jwk": jwk},
            "jku": {"jku": f"{listener.url}/jwks.json"},
            "x5u": {"x5u": f"{listener.url}/cert.pem"},
            "x5c": {"x5c": [cert]},
        }.get(header, {"jwk": jwk, "jku": listener.url, "x5u": listener.url, "x5c": [cert]})
        for kid in (signer_of(app).key_id, None):
            extra = {"kid": kid} if kid else {}
            token = jwt.encode(claims(app), attacker, algorithm="ES256", headers=headers | extra)

            assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))
        await asyncio.sleep(0.3)  # the listener would have seen a connection by now
        assert listener.connections == 0

    async def test_a_jwks_verifier_fetches_only_its_configured_url(self, listener):
        """With a provider's JWKS (AUTH_PROVIDER=supabase), a token's `jku` is not followed
        either: the one fetch goes to the configured URL."""
        configured = _Listener()
        try:
            verifier = TokenVerifier(
                keys=JwksKeys(f"{configured.url}/jwks", timeout_seconds=0.5), issuer="iss"
            )
            attacker, _ = _attacker_key_and_cert()
            token = jwt.encode(
                {"sub": "x"},
                attacker,
                algorithm="ES256",
                headers={"kid": "k", "jku": f"{listener.url}/jwks"},
            )

            with pytest.raises(Exception) as raised:  # noqa: PT011 -- either error is a refusal
                await verifier.verify(token)
            await asyncio.sleep(0.3)
        finally:
            configured.close()

        assert raised.type.__name__ in {"TokenInvalid", "SigningKeysUnavailable"}
        assert listener.connections == 0
        assert configured.connections == 1

    @pytest.mark.parametrize(
        "kid",
        [
            "../../../../../../dev/null",
            "/etc/passwd",
            "' OR '1'='1",
            "x\u0000y",
            "",
            "k" * 10_000,
            "http://127.0.0.1:1/jwks.json",
            "ES256",
        ],
        ids=["traversal", "path", "sql", "nul", "empty", "huge", "url", "alg-name"],
    )
    async def test_hostile_kid_is_refused(self, app, client, kid):
        """A `kid` selects among our keys by exact match only; anything else is refused."""
        signer = signer_of(app)
        token = jwt.encode(
            claims(app), signer._private_key, algorithm="ES256", headers={"kid": kid}
        )

        assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))

    async def test_hmac_with_empty_key_and_hostile_kid_is_refused(self, app, client):
        """The classic `kid: /dev/null` attack: HMAC keyed with an empty file's contents."""
        token = by_hand({"alg": "HS256", "kid": "../../../../dev/null"}, claims(app), b"", "HS256")

        assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))


class TestClaims:
    """V9.2.1 (`exp`, `nbf`), V9.2.3 (`aud`), issuer and required claims, each with an otherwise
    valid signature from our own key."""

    @pytest.mark.parametrize(
        "overrides",
        [
            {"aud": "anon"},
            {"aud": ["anon", "service_role"]},
            {"aud": None},
            {"iss": "https://evil.example/auth/v1"},
            {"iss": None},
            {"exp": lambda now: now - 5},
            {"exp": None},
            {"exp": "never"},
            {"nbf": lambda now: now + 120},
            {"iat": lambda now: now + 120},
            {"iat": None},
            {"sub": None},
            {"session_id": None},
        ],
        ids=[
            "aud-other",
            "aud-list-without-ours",
            "aud-missing",
            "iss-other",
            "iss-missing",
            "exp-past",
            "exp-missing",
            "exp-not-a-number",
            "nbf-future",
            "iat-future",
            "iat-missing",
            "sub-missing",
            "session_id-missing",
        ],
    )
    async def test_bad_claim_with_valid_signature_is_refused(self, app, client, overrides):
        token = es256(app, claims(app, **overrides))

        assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))

    async def test_exp_is_checked_on_every_use_not_only_the_first(self, app, client, monkeypatch):
        """The verified-claims cache never outlives `exp`."""
        token = es256(app, claims(app, exp=int(time.time()) + 30))
        assert await status_of(client, token) == 200
        later = time.time() + 60
        monkeypatch.setattr(time, "time", lambda: later)

        assert await status_of(client, token) == 401

    async def test_tampered_payload_is_refused(self, app, client):
        header, _, signature = es256(app, claims(app)).split(".")
        tampered = b64(json.dumps(claims(app, sub="33333333-3333-3333-3333-333333333333")).encode())

        assert await status_of(client, f"{header}.{tampered}.{signature}") == 401


class TestOtherInstances:
    """V9.2.3/V9.2.4: a token of another deployment (its own key, or its own issuer) is refused."""

    async def test_token_of_an_instance_with_another_key_is_refused(self, make_app, tmp_path):
        ours = await make_app()
        theirs = await make_app(data_dir=tmp_path / "other-instance")
        token = es256(theirs, claims(ours))  # their key, our claims and our key's kid

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=ours), base_url="http://testserver"
        ) as client:
            assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))

    async def test_token_of_an_instance_with_the_same_key_and_another_issuer_is_refused(
        self, make_app
    ):
        ours = await make_app()
        theirs = await make_app(jwt_issuer="https://staging.example/auth/v1")
        token = signer_of(theirs).issue(user_id="u", email="a@example.com", session_id="s").token

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=ours), base_url="http://testserver"
        ) as client:
            assert_refused(await client.get("/items", headers={"Authorization": f"Bearer {token}"}))


class TestTokenTypes:
    """V9.2.2: each token is accepted for its own purpose only."""

    async def test_refresh_token_as_access_token_is_refused(self, api: AuthApi, user):
        refresh_token = api.refresh_cookie
        assert refresh_token

        response = await api.client.get(
            "/items", headers={"Authorization": f"Bearer {refresh_token}"}
        )

        assert_refused(response)

    async def test_access_token_as_refresh_cookie_is_refused(self, api: AuthApi, user):
        api.put_refresh_cookie(user.access_token)

        response = await api.refresh()

        assert response.status_code == 401, response.text
        assert response.json()["code"] == "refresh_token_invalid"

    async def test_csrf_token_as_access_token_is_refused(self, api: AuthApi, user):
        response = await api.client.get(
            "/items", headers={"Authorization": f"Bearer {api.csrf_token}"}
        )

        assert_refused(response)
