"""`build_identity(settings, database)`: the identity provider the settings choose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from backend.app.core.server_secrets import app_secret, signing_key
from backend.app.core.settings import AuthProvider, Settings
from backend.app.db.engine import Database
from backend.app.identity.base import IdentityProvider
from backend.app.identity.embedded import EmbeddedGoTrue, EmbeddedIdentityProvider, IdentityStore
from backend.app.identity.supabase import SupabaseIdentityProvider
from backend.app.identity.tokens import JwksKeys, StaticKeys, TokenSigner, TokenVerifier
from backend.app.mail import Mailer, MailResolver

__all__ = ["Identity", "build_identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    provider: IdentityProvider
    # The embedded provider's signer (its JWKS is served); None when another service signs.
    signer: TokenSigner | None
    # The embedded provider's GoTrue operations, for GoTrue's API; None with another provider.
    gotrue: EmbeddedGoTrue | None
    # What turns the outbox's mail requests into mails (the embedded provider's); None with
    # another provider, which asks for none.
    mail_resolver: MailResolver | None = None


def _legacy_secret(settings: Settings) -> str | None:
    secret = settings.supabase_jwt_secret
    return secret.get_secret_value() if secret else None


def build_identity(
    settings: Settings, database: Database, *, mailer: Mailer | None = None
) -> Identity:
    """Args:
    mailer: the lifecycle's mails (tokens and their mails are written in one transaction);
        without it the embedded provider cannot send reset or confirmation links.
    """
    if settings.auth_provider is AuthProvider.SUPABASE:
        return Identity(provider=_supabase(settings, database), signer=None, gotrue=None)
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
    idle = settings.session_idle_timeout_seconds
    provider = EmbeddedIdentityProvider(
        store=IdentityStore(database, idle_timeout=timedelta(seconds=idle) if idle else None),
        signer=signer,
        verifier=verifier,
        secret=app_secret(settings),
        session_ttl_seconds=settings.session_ttl_seconds,
        reuse_interval_seconds=settings.refresh_reuse_interval_seconds,
        mailer=mailer,
        reset_ttl_seconds=settings.password_reset_ttl_seconds,
        confirmation_required=settings.email_confirmation_required,
        confirm_ttl_seconds=settings.email_confirm_ttl_seconds,
        password_min_length=settings.password_min_length,
        gotrue_secure_email_change=settings.gotrue_mailer_secure_email_change_enabled,
    )
    return Identity(
        provider=provider,
        signer=signer,
        gotrue=EmbeddedGoTrue(provider),
        mail_resolver=provider.resolve_mail_request,
    )


def _supabase(settings: Settings, database: Database) -> SupabaseIdentityProvider:
    url, anon, service = (
        settings.supabase_url,
        settings.supabase_anon_key,
        settings.supabase_service_role_key,
    )
    if not (url and anon and service):  # the settings class refuses to start without them
        raise RuntimeError("AUTH_PROVIDER=supabase needs SUPABASE_URL and both keys")
    url = url.rstrip("/")
    anon_key = anon.get_secret_value()
    verifier = TokenVerifier(
        keys=JwksKeys(f"{url}/auth/v1/.well-known/jwks.json", headers={"apikey": anon_key}),
        # Supabase issues its tokens as <project URL>/auth/v1.
        issuer=f"{url}/auth/v1",
        legacy_hs256_secret=_legacy_secret(settings),
    )
    return SupabaseIdentityProvider(
        url=url,
        anon_key=anon_key,
        service_role_key=service.get_secret_value(),
        verifier=verifier,
        database=database,
        site_url=settings.site_url,
        confirmation_required=settings.email_confirmation_required,
        password_min_length=settings.password_min_length,
    )
