"""The long-lived objects of one app instance, built once at start-up from its settings."""

from __future__ import annotations

from dataclasses import dataclass

from backend.app.core.rate_limit import SignInRateLimiter
from backend.app.core.security import CookiePolicy, CsrfProtector
from backend.app.core.server_secrets import app_secret
from backend.app.core.settings import Settings
from backend.app.db.engine import Database
from backend.app.db.migrate import upgrade_to_head
from backend.app.doctor import log_startup_checks
from backend.app.identity.base import IdentityProvider
from backend.app.identity.embedded import EmbeddedGoTrue
from backend.app.identity.factory import build_identity
from backend.app.identity.sessions import SessionService
from backend.app.identity.tokens import TokenSigner
from backend.app.mail import Mailer, MailSender, build_backend

__all__ = ["Services", "start_services"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    database: Database
    identity: IdentityProvider
    # The rules of every sign-up, sign-in, refresh and sign-out, for both APIs.
    sessions: SessionService
    # The embedded provider's signer, whose JWKS this app serves; None with another provider.
    signer: TokenSigner | None
    # What GoTrue's API needs beyond the protocol; None unless GOTRUE_API_ENABLED.
    gotrue: EmbeddedGoTrue | None
    cookies: CookiePolicy
    csrf: CsrfProtector
    rate_limiter: SignInRateLimiter
    mailer: Mailer
    mail_sender: MailSender

    async def close(self) -> None:
        await self.mail_sender.stop()  # before the database it reads goes
        await self.identity.close()
        await self.rate_limiter.close()
        await self.database.dispose()


async def start_services(settings: Settings) -> Services:
    # One log line per configuration check; in production a failed one stops the start.
    log_startup_checks(settings)
    await upgrade_to_head(settings.database_url)
    database = Database(
        settings.database_url,
        timeout_seconds=settings.database_timeout_seconds,
        pool_size=settings.database_pool_size,
    )
    mail_sender = MailSender(database, build_backend(settings), mail_from=settings.mail_from)
    mailer = Mailer(
        product_name=settings.mail_product_name,
        site_url=settings.site_url,
        wake_sender=mail_sender.wake,
    )
    identity = build_identity(settings, database, mailer=mailer)
    if identity.mail_resolver is not None:
        mail_sender.resolve_requests_with(identity.mail_resolver)
    if settings.gotrue_api_enabled and identity.gotrue is None:
        # GoTrue's API is the embedded provider's own; another provider has its own GoTrue.
        raise RuntimeError("GOTRUE_API_ENABLED=true needs the embedded provider")
    # Secure is forced in production; on http://localhost in development a Secure cookie would
    # simply never come back.
    cookies = CookiePolicy(
        secure=settings.is_production, session_ttl_seconds=settings.session_ttl_seconds
    )
    rate_limiter = SignInRateLimiter(
        per_account=settings.rate_limit_signin_per_account,
        per_address=settings.rate_limit_signin_per_address,
        refresh_per_address=settings.rate_limit_refresh_per_address,
        redis_url=settings.redis_url,
        email_per_recipient=settings.rate_limit_email_per_recipient,
        email_per_address=settings.rate_limit_email_per_address,
    )
    gotrue = identity.gotrue if settings.gotrue_api_enabled else None
    services = Services(
        settings=settings,
        database=database,
        identity=identity.provider,
        sessions=SessionService(
            identity=identity.provider,
            gotrue=gotrue,
            limiter=rate_limiter,
            confirmation_required=settings.email_confirmation_required,
        ),
        signer=identity.signer,
        gotrue=gotrue,
        cookies=cookies,
        csrf=CsrfProtector(
            secret=app_secret(settings),
            allowed_origins=settings.cors_origins,
            cookies=cookies,
            trusts_proxies=bool(settings.forwarded_allow_ips),
        ),
        rate_limiter=rate_limiter,
        mailer=mailer,
        mail_sender=mail_sender,
    )
    mail_sender.start()  # last: nothing above can fail and leave the task running
    return services
