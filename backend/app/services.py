"""The long-lived objects of one app instance, built once at start-up from its settings."""

from __future__ import annotations

from dataclasses import dataclass

from backend.app.core.admin_client import AdminClient
from backend.app.core.keys import app_secret, signing_key
from backend.app.core.rate_limit import SignInRateLimiter
from backend.app.core.security import CookiePolicy, CsrfProtector
from backend.app.core.settings import AuthProvider, Settings
from backend.app.db.engine import Database
from backend.app.db.migrate import upgrade_to_head
from backend.app.identity.base import IdentityProvider
from backend.app.identity.embedded import EmbeddedIdentityProvider
from backend.app.identity.tokens import TokenSigner, TokenVerifier

__all__ = ["Services", "start_services"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    database: Database
    identity: IdentityProvider
    signer: TokenSigner
    cookies: CookiePolicy
    csrf: CsrfProtector
    rate_limiter: SignInRateLimiter

    async def close(self) -> None:
        await self.rate_limiter.close()
        await self.database.dispose()


async def start_services(settings: Settings) -> Services:
    if settings.auth_provider is not AuthProvider.EMBEDDED:
        raise RuntimeError(
            "AUTH_PROVIDER=supabase is not built yet; the embedded provider is the only one"
        )
    await upgrade_to_head(settings.database_url)
    database = Database(settings.database_url, timeout_seconds=settings.database_timeout_seconds)
    secret = app_secret(settings)
    signer = TokenSigner(
        private_key=signing_key(settings),
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    verifier = TokenVerifier(
        signer=signer,
        legacy_hs256_secret=(
            settings.supabase_jwt_secret.get_secret_value()
            if settings.supabase_jwt_secret
            else None
        ),
    )
    # Secure is forced in production; on http://localhost in development a Secure cookie would
    # simply never come back.
    cookies = CookiePolicy(
        secure=settings.is_production, session_ttl_seconds=settings.session_ttl_seconds
    )
    identity = EmbeddedIdentityProvider(
        database=database,
        admin=AdminClient(database),
        signer=signer,
        verifier=verifier,
        secret=secret,
        session_ttl_seconds=settings.session_ttl_seconds,
        reuse_interval_seconds=settings.refresh_reuse_interval_seconds,
    )
    return Services(
        settings=settings,
        database=database,
        identity=identity,
        signer=signer,
        cookies=cookies,
        csrf=CsrfProtector(secret=secret, allowed_origins=settings.cors_origins, cookies=cookies),
        rate_limiter=SignInRateLimiter(
            per_account=settings.rate_limit_signin_per_account,
            per_address=settings.rate_limit_signin_per_address,
            redis_url=settings.redis_url,
        ),
    )
