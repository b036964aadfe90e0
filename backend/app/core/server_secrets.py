"""The service's two secrets: the access-token signing key and the app secret.

In development both are generated on first run and kept in the data folder (mode 0600), so a
restart keeps everyone signed in. In production they must come from settings; the settings class
already refuses to start without them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from backend.app.core.settings import Settings

__all__ = ["app_secret", "signing_key"]


def _read_or_create(path: Path, create: bytes) -> bytes:
    """The file's content, creating it with `create` if it does not exist yet.

    Several workers may start at once on an empty data folder. Each writes its candidate to a
    private temporary file and links it into place; a link never replaces an existing file, so
    exactly one candidate wins, whole, and every worker then reads that one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, candidate = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "wb") as file:  # mkstemp creates it with mode 0600
                file.write(create)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(candidate, path)
        finally:
            os.unlink(candidate)
    return path.read_bytes()


def signing_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 key that signs access tokens (ES256)."""
    if settings.jwt_private_key is not None:
        pem = settings.jwt_private_key.get_secret_value().encode()
    else:
        new_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pem = _read_or_create(settings.data_dir / "jwt_signing_key.pem", new_pem)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise RuntimeError("JWT_PRIVATE_KEY must be an EC P-256 private key in PEM form")
    return key


def app_secret(settings: Settings) -> bytes:
    """The key for CSRF tokens and refresh-token successors."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return _read_or_create(settings.data_dir / "secret_key", secrets.token_urlsafe(48).encode())
