"""`build_identity(settings, database)`: the identity provider the settings choose."""

from __future__ import annotations

from dataclasses import dataclass

from backend.app.core.keys import app_secret, signing_key
from backend.app.core.settings import AuthProvider, Settings
from backend.app.db.engine import Database
from backend.app.identity.admin_client import AdminClient
from backend.app.identity.base import IdentityProvider
from backend.app.identity.embedded import EmbeddedIdentityProvider
from backend.app.identity.tokens import StaticKeys, TokenSigner, TokenVerifier

__all__ = ["Identity", "build_identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    provider: IdentityProvider
    # The embedded provider's signer (its JWKS is served); None when another service signs.
    signer: TokenSigner | None


def _legacy_secret(settings: Settings) -> str | None:
    secret = settings.supabase_jwt_secret
    return secret.get_secret_value() if secret else None


def build_identity(settings: Settings, database: Database) -> Identity:
    if settings.auth_provider is AuthProvider.SUPABASE:
        raise RuntimeError(
            "AUTH_PROVIDER=supabase is not built yet; the embedded provider is the only one"
        )
    signer = TokenSigner(
        private_key=signing_key(settings),
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    verifier = TokenVerifier(
        keys=StaticKeys(signer.public_key, signer.key_id),
        issuer=signer.issuer,
        legacy_hs256_secret=_legacy_secret(settings),
    )
    provider = EmbeddedIdentityProvider(
        database=database,
        admin=AdminClient(database),
        signer=signer,
        verifier=verifier,
        secret=app_secret(settings),
        session_ttl_seconds=settings.session_ttl_seconds,
        reuse_interval_seconds=settings.refresh_reuse_interval_seconds,
    )
    return Identity(provider=provider, signer=signer)
