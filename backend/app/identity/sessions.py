"""The session service: the rules of signing up, in, refreshing and out, for both APIs.

`/auth` and GoTrue's `/auth/v1` call this and nothing else for these flows, so they cannot differ
in policy. Each flow is: count the attempt against its rate limits, call the provider, and log a
security event where an operator should look (a refusal, a failure, a replayed token). The routes
keep only HTTP: parse, call, shape the answer and the cookies.

    flow          limits (RateLimiter)                 security events
    sign-up       per address                          rate_limited
    sign-in       per account and per address          rate_limited, signin_failed
    refresh       refresh per address                  rate_limited, refresh_token_reused,
                                                       refresh_refused (a banned user)
    pkce code     refresh per address                  rate_limited, pkce_verifier_mismatch
    sign-out      none (it only ends sessions)         —

The GoTrue API's variants (`gotrue_*`) keep the same rules and answer with the user's record,
which GoTrue's bodies carry; they need the embedded provider's GoTrue operations.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import (
    AccountTokenInvalid,
    InvalidCredentials,
    InvalidCurrentPassword,
    RateLimited,
    RefreshTokenInvalid,
    RefreshTokenReused,
    UserBanned,
)
from backend.app.core.logging import account_fingerprint, log_security_event
from backend.app.core.rate_limit import SignInRateLimiter
from backend.app.identity.base import (
    AuthSession,
    AuthUser,
    IdentityProvider,
    LiveSession,
    SignOutScope,
)
from backend.app.identity.emails import email_key
from backend.app.identity.embedded import (
    AuthCode,
    BadCodeVerifier,
    CodeChallenge,
    EmailChangePending,
    EmbeddedGoTrue,
    FlowStateExpired,
    FlowStateNotFound,
    GoTrueSession,
    Unconfirmed,
    UserRecord,
    VerifyLinks,
)

__all__ = ["SessionService"]

logger = logging.getLogger(__name__)


class SessionService:
    """Args:
    identity: the provider the settings chose.
    gotrue: the embedded provider's GoTrue operations, when GoTrue's API is served; else None.
    limiter: the rate limits of every credential grant.
    confirmation_required: sign-up mails a confirmation link (counted as a mail).
    """

    def __init__(
        self,
        *,
        identity: IdentityProvider,
        gotrue: EmbeddedGoTrue | None,
        limiter: SignInRateLimiter,
        confirmation_required: bool = False,
    ):
        self._confirmation_required = confirmation_required
        self._identity = identity
        self._gotrue = gotrue
        self._limiter = limiter

    async def sign_up(
        self, *, email: str, password: str, display_name: str | None, address: str
    ) -> AuthUser:
        """Create a user and its profile (does not sign in).

        Raises:
            RateLimited, WeakPassword, UserAlreadyExists, ProviderUnavailable.
        """
        await self._count_sign_up(address)
        if self._confirmation_required:
            await self._count_email(email, address, reason="signup_confirmation")
        user = await self._identity.sign_up(
            email=email, password=password, display_name=display_name
        )
        logger.info("user signed up", extra={"user_id": user.id})
        return user

    async def sign_in(
        self, *, email: str, password: str, address: str, user_agent: str | None = None
    ) -> AuthSession:
        """Open a session with a password.

        Raises:
            RateLimited: before the password is checked; the attempt still counts.
            InvalidCredentials: unknown address or wrong password, alike (and its subclass
                EmailNotConfirmed); logged as `signin_failed`.
            UserBanned: the right password of a banned user (the embedded provider checks the
                password first; GoTrue, behind the supabase provider, does not); logged as
                `signin_failed`.
            ProviderUnavailable.
        """
        async with self._sign_in_attempt(email, address):
            session = await self._identity.sign_in_with_password(
                email=email, password=password, user_agent=user_agent
            )
        logger.info("user signed in", extra={"user_id": session.user.id})
        return session

    async def refresh(self, *, refresh_token: str, address: str) -> AuthSession:
        """Rotate a refresh token.

        Raises:
            RateLimited, RefreshTokenInvalid, ProviderUnavailable.
            RefreshTokenReused: the session is revoked; logged, since two parties held it.
            UserBanned: logged; the token stays usable for when the ban ends (as GoTrue).
        """
        async with self._refresh_attempt(address):
            return await self._identity.refresh(refresh_token=refresh_token)

    async def sign_out(
        self, *, refresh_token: str, scope: SignOutScope = SignOutScope.LOCAL
    ) -> str | None:
        """End the refresh token's session (or by `scope` the user's others, or all). Returns
        the session's new refresh token when the provider rotated it (`IdentityProvider`)."""
        return await self._identity.sign_out(refresh_token=refresh_token, scope=scope)

    async def request_password_reset(self, *, email: str, address: str) -> None:
        """Count the request per recipient and per address (unknown addresses too, so a 429
        reveals nothing), then let the provider mail a link if the address is known.

        Raises:
            RateLimited, NotSupported.
        """
        await self._count_email(email, address, reason="password_forgot")
        await self._identity.request_password_reset(email=email)

    async def reset_password(
        self, *, token: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        """Raises AccountTokenInvalid (logged at info: never the token), WeakPassword."""
        try:
            session = await self._identity.reset_password(
                token=token, password=password, user_agent=user_agent
            )
        except AccountTokenInvalid:
            logger.info("reset refused", extra={"reason": "token_invalid"})
            raise
        log_security_event(
            "password_reset", account=account_fingerprint(email_key(session.user.email))
        )
        return session

    async def change_password(
        self, *, claims: AccessClaims, current_password: str, new_password: str, address: str
    ) -> None:
        """Change the caller's password. Every attempt counts toward the sign-in limits of the
        caller's account and address, so a stolen access token cannot guess the password faster
        than a sign-in could.

        Raises:
            RateLimited, InvalidCurrentPassword (logged), WeakPassword, NotSupported.
        """
        account = account_fingerprint(email_key(claims.email))
        try:
            await self._limiter.hit_sign_in(email_key=email_key(claims.email), address=address)
        except RateLimited:
            log_security_event("rate_limited", reason="password_change", account=account)
            raise
        try:
            await self._identity.change_password(
                claims, current_password=current_password, new_password=new_password
            )
        except InvalidCurrentPassword as exc:
            log_security_event("password_change_failed", reason=exc.code, account=account)
            raise
        logger.info("password changed", extra={"user_id": claims.user_id})

    async def resend_confirmation(self, *, email: str, address: str) -> None:
        """Count as `request_password_reset` does, then let the provider mail a new link if the
        address has an unconfirmed sign-up. Raises RateLimited, NotSupported."""
        await self._count_email(email, address, reason="email_resend")
        await self._identity.resend_confirmation(email=email)

    async def verify_email(self, *, token: str) -> AuthUser:
        """Raises AccountTokenInvalid (logged at info: never the token), UserAlreadyExists."""
        try:
            user = await self._identity.verify_email(token=token)
        except AccountTokenInvalid:
            logger.info("email confirmation refused", extra={"reason": "token_invalid"})
            raise
        logger.info("email confirmed", extra={"user_id": user.id})
        return user

    async def request_email_change(
        self, *, claims: AccessClaims, new_email: str, current_password: str, address: str
    ) -> None:
        """Ask to change the caller's address. Every attempt counts toward the sign-in limits
        of the caller's account and address (as a password change), and toward the mail limits
        of the new address (its recipient) and of the client's address.

        Raises:
            RateLimited, InvalidCurrentPassword (logged), UserAlreadyExists, NotSupported.
        """
        account = account_fingerprint(email_key(claims.email))
        try:
            await self._limiter.hit_sign_in(email_key=email_key(claims.email), address=address)
        except RateLimited:
            log_security_event("rate_limited", reason="email_change", account=account)
            raise
        await self._count_email(new_email, address, reason="email_change")
        try:
            await self._identity.request_email_change(
                claims, new_email=new_email, current_password=current_password
            )
        except InvalidCurrentPassword as exc:
            log_security_event("email_change_failed", reason=exc.code, account=account)
            raise
        logger.info("email change requested", extra={"user_id": claims.user_id})

    async def list_sessions(self, *, claims: AccessClaims) -> list[LiveSession]:
        """The caller's live sessions, newest first. Raises NotSupported (supabase, for now)."""
        return await self._identity.list_sessions(claims)

    async def end_session(self, *, claims: AccessClaims, session_id: str) -> None:
        """End one of the caller's sessions (its own too). Raises NotFound, NotSupported."""
        await self._identity.end_session(claims, session_id)
        logger.info("session ended", extra={"user_id": claims.user_id})

    # GoTrue's API: the same rules, GoTrue's answers.

    async def gotrue_sign_up(
        self,
        *,
        email: str,
        password: str,
        user_metadata: dict[str, Any],
        address: str,
        links: VerifyLinks,
        user_agent: str | None = None,
        challenge: CodeChallenge | None = None,
    ) -> GoTrueSession | Unconfirmed:
        """GoTrue's sign-up: with autoconfirm a user and a first session; with confirmation
        required an unconfirmed user and a confirmation mail (PKCE with `challenge`), counted
        as `/auth`'s sign-up."""
        await self._count_sign_up(address)
        gotrue = self._gotrue_operations()
        if gotrue.confirmation_required:
            await self._count_email(email, address, reason="signup_confirmation")
        answer = await gotrue.sign_up(
            email=email,
            password=password,
            user_metadata=user_metadata,
            links=links,
            user_agent=user_agent,
            challenge=challenge,
        )
        if not (isinstance(answer, Unconfirmed) and answer.obfuscated):
            logger.info("user signed up", extra={"user_id": answer.user.id})
        return answer

    async def gotrue_magic_link(
        self,
        *,
        email: str,
        create_user: bool,
        user_metadata: dict[str, Any],
        address: str,
        links: VerifyLinks,
        signup_disabled: bool,
        challenge: CodeChallenge | None = None,
    ) -> None:
        """GoTrue's `/otp`: counted as a mail to that recipient before anything else (so the
        `create_user: false` answer, which GoTrue lets tell known from unknown, is rate-limited
        like every other lifecycle mail)."""
        await self._count_email(email, address, reason="magic_link")
        await self._gotrue_operations().magic_link(
            email=email,
            create_user=create_user,
            user_metadata=user_metadata,
            links=links,
            signup_disabled=signup_disabled,
            challenge=challenge,
        )

    async def gotrue_reauthenticate(self, *, claims: AccessClaims, address: str) -> None:
        """GoTrue's `/reauthenticate`: counted as a mail to the caller."""
        await self._count_email(claims.email, address, reason="reauthenticate")
        await self._gotrue_operations().reauthenticate(claims)

    async def gotrue_update_user(
        self,
        *,
        claims: AccessClaims,
        address: str,
        links: VerifyLinks,
        password: str | None = None,
        user_metadata: dict[str, Any] | None = None,
        nonce: str | None = None,
        new_email: str | None = None,
        challenge: CodeChallenge | None = None,
        require_reauthentication: bool = False,
    ) -> UserRecord | None:
        """GoTrue's `PUT /user`, all or nothing (`EmbeddedGoTrue.update_user`), counted first:

        - a new password or a nonce toward the sign-in limits of the caller's account and
          address: the 6-digit nonce is a guessable credential, and a new password is compared
          with the current one (GoTrue's `same_password`), so a stolen access token guesses
          neither faster than a sign-in could;
        - a new address toward the mail limits of that address (its recipient) and the
          client's, as `request_email_change`; no current password (GoTrue asks for none: the
          bearer is the proof, and the old address gets a notice); `challenge`: a PKCE flow.

        Raises:
            RateLimited, WeakPassword, SamePassword, NonceRequired, NonceInvalid,
            UserAlreadyExists.
        """
        if password is not None or nonce:
            try:
                await self._limiter.hit_sign_in(email_key=email_key(claims.email), address=address)
            except RateLimited:
                account = account_fingerprint(email_key(claims.email))
                log_security_event(
                    "rate_limited", reason="user_update", account=account, address=address
                )
                raise
        if new_email is not None:
            await self._count_email(new_email, address, reason="email_change")
        user = await self._gotrue_operations().update_user(
            claims,
            password=password,
            user_metadata=user_metadata,
            nonce=nonce,
            require_reauthentication=require_reauthentication,
            new_email=new_email,
            links=links,
            challenge=challenge,
        )
        if new_email is not None and user is not None:
            logger.info("email change requested", extra={"user_id": claims.user_id})
        return user

    async def gotrue_resend_email_change(
        self,
        *,
        email: str,
        address: str,
        links: VerifyLinks,
        challenge: CodeChallenge | None = None,
    ) -> None:
        """GoTrue's `/resend` `email_change`: counted as `/resend` `signup`."""
        await self._count_email(email, address, reason="email_resend")
        await self._gotrue_operations().resend_email_change(
            email=email, links=links, challenge=challenge
        )

    async def gotrue_recover(
        self,
        *,
        email: str,
        address: str,
        links: VerifyLinks,
        challenge: CodeChallenge | None = None,
    ) -> None:
        """GoTrue's `/recover`: counted and mailed as `request_password_reset`, GoTrue's link
        (a PKCE one with `challenge`)."""
        await self._count_email(email, address, reason="password_forgot")
        await self._gotrue_operations().recover(email=email, links=links, challenge=challenge)

    async def gotrue_resend_confirmation(
        self,
        *,
        email: str,
        address: str,
        links: VerifyLinks,
        challenge: CodeChallenge | None = None,
    ) -> None:
        """GoTrue's `/resend` `signup`: counted and mailed as `resend_confirmation`."""
        await self._count_email(email, address, reason="email_resend")
        await self._gotrue_operations().resend_confirmation(
            email=email, links=links, challenge=challenge
        )

    async def gotrue_verify(
        self,
        *,
        kind: str,
        address: str,
        token_hash: str | None = None,
        token: str | None = None,
        email: str | None = None,
        user_agent: str | None = None,
    ) -> GoTrueSession | EmailChangePending:
        """GoTrue's `/verify`. A 6-digit code with its address is a guessable credential: each
        try counts toward the sign-in limits of that account and the client's address, as a
        password does. A link's token (256 bits) counts toward the address's limit only.

        Raises:
            RateLimited, AccountTokenInvalid (logged at info: never the token).
        """
        if email is not None:
            account = account_fingerprint(email_key(email))
            try:
                await self._limiter.hit_sign_in(email_key=email_key(email), address=address)
            except RateLimited:
                log_security_event("rate_limited", reason="verify", account=account)
                raise
        else:
            await self._count_link(address)
        try:
            answer = await self._gotrue_operations().verify(
                kind=kind, token_hash=token_hash, token=token, email=email, user_agent=user_agent
            )
        except AccountTokenInvalid:
            logger.info("verification refused", extra={"reason": "token_invalid"})
            raise
        if isinstance(answer, EmailChangePending):
            logger.info("email change half confirmed", extra={"user_id": answer.user_id})
            return answer
        logger.info("user verified", extra={"user_id": answer.user.id, "type": kind})
        return answer

    async def gotrue_verify_for_code(
        self, *, kind: str, token_hash: str, address: str
    ) -> AuthCode | EmailChangePending:
        """GoTrue's `GET /verify` of a PKCE link: counted as any link's verify; an auth code
        for the client's `grant_type=pkce`, not a session (or, the first verify of a secure
        email change, `EmailChangePending`: no code yet).

        Raises:
            RateLimited, AccountTokenInvalid, FlowStateNotFound (both logged at info).
        """
        await self._count_link(address)
        try:
            answer = await self._gotrue_operations().verify_for_code(
                kind=kind, token_hash=token_hash
            )
        except (AccountTokenInvalid, FlowStateNotFound) as exc:
            logger.info("verification refused", extra={"reason": type(exc).__name__})
            raise
        if isinstance(answer, EmailChangePending):
            logger.info("email change half confirmed", extra={"user_id": answer.user_id})
            return answer
        logger.info("user verified", extra={"user_id": answer.user.id, "type": kind})
        return answer

    async def gotrue_exchange_code(
        self, *, auth_code: str, code_verifier: str, address: str, user_agent: str | None = None
    ) -> GoTrueSession:
        """GoTrue's `grant_type=pkce`: an auth code and its verifier for a session, counted
        against the refresh limit (a code is as unguessable as a refresh token).

        Raises:
            RateLimited, FlowStateNotFound, FlowStateExpired (logged at info).
            BadCodeVerifier: logged as a security event: a live code reached someone without
                its verifier, which is the interception PKCE exists to stop.
        """
        try:
            await self._limiter.hit_refresh(address=address)
        except RateLimited:
            log_security_event("rate_limited", reason="pkce", address=address)
            raise
        try:
            answer = await self._gotrue_operations().exchange_code(
                auth_code=auth_code, code_verifier=code_verifier, user_agent=user_agent
            )
        except BadCodeVerifier as exc:
            log_security_event(
                "pkce_verifier_mismatch",
                reason="bad_code_verifier",
                user_id=exc.user_id,
                address=address,
            )
            raise
        except (FlowStateNotFound, FlowStateExpired) as exc:
            logger.info("code exchange refused", extra={"reason": type(exc).__name__})
            raise
        logger.info("user signed in", extra={"user_id": answer.user.id, "grant": "pkce"})
        return answer

    async def gotrue_sign_in(
        self, *, email: str, password: str, address: str, user_agent: str | None = None
    ) -> GoTrueSession:
        """As `sign_in`, counted against the same limits and logged the same way."""
        async with self._sign_in_attempt(email, address):
            answer = await self._gotrue_operations().sign_in(
                email=email, password=password, user_agent=user_agent
            )
        logger.info("user signed in", extra={"user_id": answer.user.id})
        return answer

    async def gotrue_refresh(self, *, refresh_token: str, address: str) -> GoTrueSession:
        """As `refresh`, counted against the same limit and logged the same way."""
        async with self._refresh_attempt(address):
            return await self._gotrue_operations().refresh(refresh_token=refresh_token)

    # The rules.

    def _gotrue_operations(self) -> EmbeddedGoTrue:
        if self._gotrue is None:  # its routes are only mounted when it is there
            raise RuntimeError("GoTrue's API needs the embedded provider")
        return self._gotrue

    async def _count_email(self, email: str, address: str, *, reason: str) -> None:
        try:
            await self._limiter.hit_email(recipient_key=email_key(email), address=address)
        except RateLimited:
            account = account_fingerprint(email_key(email))
            log_security_event("rate_limited", reason=reason, account=account, address=address)
            raise

    async def _count_link(self, address: str) -> None:
        """A link's token (256 bits) counts toward the client address's limit only."""
        try:
            await self._limiter.hit_sign_up(address=address)
        except RateLimited:
            log_security_event("rate_limited", reason="verify", address=address)
            raise

    async def _count_sign_up(self, address: str) -> None:
        try:
            await self._limiter.hit_sign_up(address=address)
        except RateLimited:
            log_security_event("rate_limited", reason="signup", address=address)
            raise

    @asynccontextmanager
    async def _sign_in_attempt(self, email: str, address: str) -> AsyncIterator[None]:
        """Count a sign-in attempt (every one, successful or not, before the password is
        checked), and log a refusal or a failure with the account's pseudonym, never the
        address as typed (people paste passwords into it)."""
        account = account_fingerprint(email_key(email))
        try:
            await self._limiter.hit_sign_in(email_key=email_key(email), address=address)
        except RateLimited:
            log_security_event("rate_limited", reason="signin", account=account, address=address)
            raise
        try:
            yield
        except (InvalidCredentials, UserBanned) as exc:
            log_security_event("signin_failed", reason=exc.code, account=account, address=address)
            raise

    @asynccontextmanager
    async def _refresh_attempt(self, address: str) -> AsyncIterator[None]:
        try:
            await self._limiter.hit_refresh(address=address)
        except RateLimited:
            log_security_event("rate_limited", reason="refresh", address=address)
            raise
        try:
            yield
        except RefreshTokenReused as exc:
            # Two parties held one session; it is revoked now. Worth an operator's look.
            log_security_event("refresh_token_reused", reason=exc.code, address=address)
            raise
        except RefreshTokenInvalid as exc:
            logger.info("refresh refused", extra={"reason": exc.code})
            raise
        except UserBanned as exc:
            # A banned user's client still refreshing: worth an operator's look.
            log_security_event("refresh_refused", reason=exc.code, address=address)
            raise
