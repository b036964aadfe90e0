"""The embedded identity provider: the `IdentityProvider` protocol on the app's own database.

It mirrors Supabase Auth's semantics so the app behaves the same with either provider:

- A session starts at sign-in and ends at sign-out, at `SESSION_TTL_SECONDS`, or on token reuse.
- Refresh tokens are opaque and single use. Only their SHA-256 is stored. The first one of a
  session is random; each successor is `HMAC(secret, predecessor)`. That lets a token presented
  again within the reuse interval be answered with the successor already issued (two tabs that
  refresh at once both stay signed in) without storing any token in clear.
- A rotated token presented after the reuse interval means two parties hold the same session: the
  whole session is revoked (`refresh_token_reused`), as GoTrue does.

The statements are the store's (`store.py`); GoTrue's own operations are `gotrue.py`'s.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

from sqlalchemy.engine import Connection

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import (
    AccountTokenInvalid,
    EmailNotConfirmed,
    InvalidCredentials,
    InvalidCurrentPassword,
    NotFound,
    NotSupported,
    ProviderUnavailable,
    RefreshTokenReused,
    Unauthorized,
    UserAlreadyExists,
    WeakPassword,
)
from backend.app.db.engine import DatabaseUnavailable
from backend.app.db.tables import utcnow
from backend.app.identity.base import AuthSession, AuthUser, LiveSession, SignOutScope
from backend.app.identity.emails import email_key
from backend.app.identity.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
    verify_unknown_user,
)
from backend.app.identity.tokens import TokenSigner, TokenVerifier
from backend.app.mail import Mailer

from .store import (
    EMAIL_CHANGE,
    EMAIL_CHANGE_CURRENT,
    EMAIL_CHANGE_NEW,
    EMAIL_CHANGES,
    REAUTHENTICATION,
    RESET,
    SIGNUP,
    Grant,
    IdentityStore,
    Reused,
    UserRecord,
    code_hash,
    hash_token,
)

__all__ = ["EmbeddedIdentityProvider", "IssuedLink", "VerifyLinks", "provider_call"]

# GoTrue's GOTRUE_MAILER_OTP_LENGTH default: the code beside the link in a mail sent via /auth/v1.
OTP_DIGITS = 6


@dataclass(frozen=True, slots=True)
class VerifyLinks:
    """How a mail asked for through GoTrue's API links: GoTrue's `{{ .ConfirmationURL }}`,
    `{verify_url}?token=…&type=…&redirect_to=…` (the stand-in's `GET /auth/v1/verify`), with a
    6-digit code beside it for `POST /verify {email, token}`. Mails asked for through `/auth` have
    none: they link to the SPA with the token in the fragment (docs/account-lifecycle.md)."""

    verify_url: str
    redirect_to: str

    def link(self, token: str, kind: str) -> str:
        query = urlencode({"token": token, "type": kind, "redirect_to": self.redirect_to})
        return f"{self.verify_url}?{query}"


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A mail's secrets: the link's token, and with GoTrue's links its code; only hashes are
    stored. The repr names neither."""

    token: str
    link: str | None
    code: str | None
    code_hash: str | None

    def __repr__(self) -> str:
        return "IssuedLink(…)"


def _draw(email: str, links: VerifyLinks | None, kind: str) -> IssuedLink:
    token = secrets.token_urlsafe(32)  # 256 bits
    if links is None:
        return IssuedLink(token=token, link=None, code=None, code_hash=None)
    code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
    return IssuedLink(
        token=token,
        link=links.link(token, kind),
        code=code,
        code_hash=code_hash(email_key(email), code),
    )


P = ParamSpec("P")
R = TypeVar("R")


def provider_call(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Report an unreachable database as 503 `provider_unavailable`, like an unreachable GoTrue.

    For refresh this matters most: a 503 keeps the refresh cookie, where a 401 would clear it and
    sign the user out over a passing outage.
    """

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except DatabaseUnavailable as exc:
            raise ProviderUnavailable(retry_after_seconds=exc.retry_after_seconds) from exc

    return wrapper


class EmbeddedIdentityProvider:
    def __init__(
        self,
        *,
        store: IdentityStore,
        signer: TokenSigner,
        verifier: TokenVerifier,
        secret: bytes,
        session_ttl_seconds: int,
        reuse_interval_seconds: int,
        mailer: Mailer | None = None,
        reset_ttl_seconds: int = 3600,
        confirmation_required: bool = False,
        confirm_ttl_seconds: int = 86400,
        password_min_length: int | None = None,
        gotrue_secure_email_change: bool = False,
    ):
        self._mailer = mailer
        # GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED: for the mails GoTrue's API asks for only.
        self.gotrue_secure_email_change = gotrue_secure_email_change
        self.password_min_length = password_min_length or 8
        # Without a mailer no link could be sent: sign-ups are confirmed at once then.
        self.confirmation_required = confirmation_required and mailer is not None
        self._confirm_ttl = timedelta(seconds=confirm_ttl_seconds)
        self._reset_ttl = timedelta(seconds=reset_ttl_seconds)
        self.store = store
        self.signer = signer
        self._verifier = verifier
        self._secret = secret
        self._session_ttl = timedelta(seconds=session_ttl_seconds)
        self._reuse_interval = timedelta(seconds=reuse_interval_seconds)

    def check_password(self, password: str) -> None:
        """The password policy with this app's `PASSWORD_MIN_LENGTH`. Raises WeakPassword."""
        check_password_policy(password, min_length=self.password_min_length)

    @provider_call
    async def sign_up(self, *, email: str, password: str, display_name: str | None) -> AuthUser:
        # One user store with GoTrue's API: there, the name is user metadata.
        user = await self.create_user(
            email,
            password,
            display_name=display_name,
            user_metadata={"display_name": display_name} if display_name else {},
            email_confirmed=not self.confirmation_required,
        )
        if self.confirmation_required:
            await self.issue_confirmation(email, only_unconfirmed=False)
        confirmed = not self.confirmation_required
        return AuthUser(id=user.id, email=user.email, email_confirmed=confirmed)

    async def create_user(
        self,
        email: str,
        password: str,
        *,
        display_name: str | None,
        user_metadata: dict[str, Any],
        app_metadata: dict[str, Any] | None = None,
        email_confirmed: bool = True,
    ) -> UserRecord:
        """A user with its profile, after the password policy.

        Raises:
            WeakPassword, UserAlreadyExists: as `sign_up`.
        """
        self.check_password(password)
        return await self.store.create_user(
            email=email_key(email),
            email_as_typed=email,
            password_hash=await hash_password(password),
            display_name=display_name,
            user_metadata=user_metadata,
            app_metadata=app_metadata,
            email_confirmed=email_confirmed,
        )

    @provider_call
    async def sign_in_with_password(
        self, *, email: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        return self.session(
            await self.sign_in(email=email, password=password, user_agent=user_agent)
        )

    async def sign_in(self, *, email: str, password: str, user_agent: str | None = None) -> Grant:
        """Check the password (a dummy verify for an unknown address) and open a session.

        Raises:
            InvalidCredentials: unknown address or wrong password, alike.
            EmailNotConfirmed: the right password of an unconfirmed address.
        """
        found = await self.store.credentials(email_key=email_key(email))
        if found is None:
            await verify_unknown_user(password=password)
            raise InvalidCredentials()
        check = await verify_password(password_hash=found.password_hash, password=password)
        if not check.matches:
            raise InvalidCredentials()
        if found.user.email_confirmed_at is None:  # only after the password, as GoTrue
            raise EmailNotConfirmed()
        if check.new_hash is not None:
            return await self.open_session(
                found.user,
                user_agent=user_agent,
                password_hash=check.new_hash,
                updated_at=utcnow(),
            )
        return await self.open_session(found.user, user_agent=user_agent)

    async def open_session(
        self, user: UserRecord, *, user_agent: str | None = None, **user_changes: Any
    ) -> Grant:
        """A new session of `user` (a password checked, or a user just created with GoTrue's
        autoconfirm), stamping `user_changes` on the user in the same transaction; the session
        records `user_agent` (the opening request's, bounded) for the owner's session list."""
        return await self.store.open_session(
            user,
            refresh_token=secrets.token_urlsafe(32),
            lifetime=self._session_ttl,
            user_changes=user_changes,
            user_agent=user_agent,
        )

    @provider_call
    async def refresh(self, *, refresh_token: str) -> AuthSession:
        return self.session(await self.rotate(refresh_token))

    async def rotate(self, refresh_token: str) -> Grant:
        """Rotate a refresh token (see the module docstring).

        Raises:
            RefreshTokenInvalid, RefreshTokenReused: as `refresh`.
        """
        # The reuse interval counts from when the token was presented, not from when its turn for
        # the database came: under load, a twin request that arrived with it may wait longer.
        outcome = await self.store.rotate(
            refresh_token,
            presented_at=utcnow(),
            reuse_interval=self._reuse_interval,
            successor=self._successor,
        )
        if isinstance(outcome, Reused):
            raise RefreshTokenReused()
        return outcome

    @provider_call
    async def sign_out(
        self, *, refresh_token: str, scope: SignOutScope = SignOutScope.LOCAL
    ) -> None:
        session = await self.store.session_of(refresh_token)
        if session is not None:
            session_id, user_id = session
            await self.store.revoke_sessions(user_id=user_id, session_id=session_id, scope=scope)

    @provider_call
    async def change_password(
        self, claims: AccessClaims, *, current_password: str, new_password: str
    ) -> None:
        password_hash = await self.store.password_hash(claims.user_id)
        if password_hash is None:
            raise Unauthorized(token_was_sent=True, details={"reason": "user_gone"})
        check = await verify_password(password_hash=password_hash, password=current_password)
        if not check.matches:
            raise InvalidCurrentPassword()
        if new_password == current_password:
            raise WeakPassword(
                "The new password must differ from the current one",
                details={"reasons": ["same_password"]},
            )
        self.check_password(new_password)
        changed = await self.store.change_password(
            claims.user_id,
            password_hash=await hash_password(new_password),
            keep_session_id=claims.session_id,
        )
        if not changed:
            raise Unauthorized(token_was_sent=True, details={"reason": "user_gone"})

    @provider_call
    async def request_password_reset(self, *, email: str) -> None:
        await self.mail_sign_in_link(email=email, purpose=RESET)

    async def mail_sign_in_link(
        self, *, email: str, purpose: str, links: VerifyLinks | None = None, send: bool = True
    ) -> IssuedLink | None:
        """Mail a reset link (`purpose` RESET) or a magic link (MAGICLINK, GoTrue's API only) to
        the stored address of `email`'s user, if there is one; spend the user's older tokens of
        that purpose. Nothing tells a caller whether the address is known.

        Nor should the time it takes. A known and an unknown address take one path as far as it
        can go: both draw a token and hash it, look the user up, run the UPDATE that spends
        older tokens (on no row for an unknown address) and render the mail (the unknown one's,
        to the address as typed, is dropped), all in one write transaction that commits. The
        SMTP work, the slow and variable part, is never on the request's path: the mail waits
        in the outbox and the sender delivers it after the 202. What differs is two small
        INSERTs (the token, the outbox row) in that same transaction; no decoy rows are written
        for them, since an outbox row would be mailed and a token row needs a user.
        """
        if self._mailer is None:
            raise NotSupported()
        mailer, ttl = self._mailer, self._reset_ttl
        issued = _draw(email, links, "recovery" if purpose == RESET else "magiclink")
        expires_at = utcnow() + ttl
        render = mailer.password_reset if purpose == RESET else mailer.magic_link

        def mail(conn: Connection, stored_email: str) -> None:
            if not send:
                return
            message = render(
                to=stored_email,
                token=issued.token,
                valid_for=ttl,
                link=issued.link,
                code=issued.code,
            )
            mailer.enqueue(conn, message, not_after=expires_at)

        def decoy(conn: Connection) -> None:  # rendered, not sent
            render(to=email, token=issued.token, valid_for=ttl, link=issued.link, code=issued.code)

        found = await self.store.issue_account_token(
            email_key=email_key(email),
            purpose=purpose,
            token_hash=hash_token(issued.token),
            code_hash=issued.code_hash,
            expires_at=expires_at,
            on_issued=mail,
            on_unknown=decoy,
        )
        return issued if found else None

    async def mail_reauthentication(self, *, user_id: str, email: str) -> None:
        """GoTrue's `/reauthenticate`: mail the user a 6-digit nonce (stored as the hash of the
        address and the code), spending older ones. Raises NotSupported without a mailer."""
        if self._mailer is None:
            raise NotSupported()
        mailer, ttl = self._mailer, self._reset_ttl
        code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        expires_at = utcnow() + ttl

        def mail(conn: Connection, stored_email: str) -> None:
            message = mailer.reauthentication(to=stored_email, code=code, valid_for=ttl)
            mailer.enqueue(conn, message, not_after=expires_at)

        await self.store.issue_account_token(
            email_key=email_key(email),
            purpose=REAUTHENTICATION,
            token_hash=code_hash(email_key(email), code),
            expires_at=expires_at,
            on_issued=mail,
        )

    @provider_call
    async def reset_password(
        self, *, token: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        """Set a new password with a reset token and sign in: the token is checked first (400
        whatever the password), a refused password (422) leaves it unspent; the reset ends
        every session of the user, spends every reset token and confirms the address."""
        token_hash = hash_token(token)
        if not await self.store.account_token_usable(token_hash=token_hash, purpose=RESET):
            raise AccountTokenInvalid()
        self.check_password(password)
        user = await self.store.reset_password(
            token_hash=token_hash, password_hash=await hash_password(password)
        )
        if user is None:  # spent by a racing reset, or the user was deleted meanwhile
            raise AccountTokenInvalid()
        return self.session(await self.open_session(user, user_agent=user_agent))

    @provider_call
    async def resend_confirmation(self, *, email: str) -> None:
        """Mail a new confirmation link to an unconfirmed sign-up's stored address (spending its
        older ones); a confirmed or unknown address takes the same path and gets nothing."""
        await self.issue_confirmation(email, only_unconfirmed=True)

    async def issue_confirmation(
        self,
        email: str,
        *,
        only_unconfirmed: bool,
        links: VerifyLinks | None = None,
        kind: str = "signup",
        send: bool = True,
    ) -> IssuedLink | None:
        """Mail a sign-up confirmation link (with `links`, GoTrue's link and code; `kind`
        `invite`, an invitation) to the stored address of `email`'s user. None when there is no
        such user (or, `only_unconfirmed`, it is already confirmed). `send` False: only store
        the token and return its secrets (GoTrue's `generate_link`). Raises NotSupported
        without a mailer."""
        if self._mailer is None:
            raise NotSupported()
        mailer, ttl = self._mailer, self._confirm_ttl
        issued = _draw(email, links, kind)
        expires_at = utcnow() + ttl
        render = mailer.invite if kind == "invite" else mailer.signup_confirmation

        def mail(conn: Connection, stored_email: str) -> None:
            if not send:
                return
            message = render(
                to=stored_email,
                token=issued.token,
                valid_for=ttl,
                link=issued.link,
                code=issued.code,
            )
            mailer.enqueue(conn, message, not_after=expires_at)

        def decoy(conn: Connection) -> None:  # rendered, not sent
            render(to=email, token=issued.token, valid_for=ttl, link=issued.link, code=issued.code)

        found = await self.store.issue_account_token(
            email_key=email_key(email),
            purpose=SIGNUP,
            token_hash=hash_token(issued.token),
            code_hash=issued.code_hash,
            expires_at=expires_at,
            on_issued=mail,
            on_unknown=decoy,
            only_unconfirmed=only_unconfirmed,
        )
        return issued if found else None

    async def issue_email_change_link(
        self,
        *,
        user_id: str,
        new_email: str,
        links: VerifyLinks,
        code_for: str,
        current: bool = False,
    ) -> IssuedLink | None:
        """GoTrue's `generate_link` `email_change_*`: store an email-change token carrying
        `new_email` (and a code for the address `code_for`) without mailing. None when the new
        address is taken or the user gone. With the secure email change, it is one side's
        token (`current`: the current address's, else the new one's), replacing that side's
        and keeping the other's, as GoTrue's `adminGenerateLink`; without, the one token."""
        issued = _draw(code_for, links, "email_change")
        side = EMAIL_CHANGE_CURRENT if current else EMAIL_CHANGE_NEW
        if not self.gotrue_secure_email_change:
            side = EMAIL_CHANGE
        stored = await self.store.issue_email_change(
            user_id=user_id,
            new_email=email_key(new_email),
            new_email_as_typed=new_email,
            token_hash=hash_token(issued.token),
            code_hash=issued.code_hash,
            expires_at=utcnow() + self._confirm_ttl,
            on_issued=lambda conn, stored_email: None,
            purpose=side,
            replaces={
                EMAIL_CHANGE: EMAIL_CHANGES,
                EMAIL_CHANGE_NEW: (EMAIL_CHANGE_NEW, EMAIL_CHANGE),
                EMAIL_CHANGE_CURRENT: (EMAIL_CHANGE_CURRENT,),
            }[side],
        )
        return issued if stored else None

    @provider_call
    async def verify_email(self, *, token: str) -> AuthUser:
        user = await self.store.confirm_email(token_hash=hash_token(token))
        if user is None:
            raise AccountTokenInvalid()
        return AuthUser(id=user.id, email=user.email, email_confirmed=True)

    @provider_call
    async def request_email_change(
        self, claims: AccessClaims, *, new_email: str, current_password: str
    ) -> None:
        """Check the current password, then (unless the new address is taken) store a token
        carrying the new address and mail its link to the new address, a notice without token
        to the old one, in one transaction. The change is applied by `verify_email`."""
        if self._mailer is None:
            raise NotSupported()
        password_hash = await self.store.password_hash(claims.user_id)
        if password_hash is None:
            raise Unauthorized(token_was_sent=True, details={"reason": "user_gone"})
        check = await verify_password(password_hash=password_hash, password=current_password)
        if not check.matches:
            raise InvalidCurrentPassword()
        if not await self.mail_email_change(user_id=claims.user_id, new_email=new_email):
            raise UserAlreadyExists()

    async def mail_email_change(
        self, *, user_id: str, new_email: str, links: VerifyLinks | None = None
    ) -> bool:
        """Unless the new address is taken (or the user gone: False), store a token carrying
        the new address and mail its link (with `links`, GoTrue's link and code) to the new
        address, a notice without token to the old one, in one transaction. The change is
        applied by `verify_email` (GoTrue's API: `/verify` type `email_change`).

        GoTrue's API with its secure email change (`gotrue_secure_email_change`): the old
        address gets its own link and code instead of the notice (GoTrue's `sendEmailChange`,
        and its template mailer's `EmailChangeMail`: one mail to each address, each with that
        address's code as `{{ .Token }}`); `/verify` then wants both."""
        if self._mailer is None:
            raise NotSupported()
        mailer, ttl = self._mailer, self._confirm_ttl
        issued = _draw(new_email, links, "email_change")
        # The code's hash needs the stored current address: the store makes it.
        current = _draw("", links, "email_change") if self._secure(links) else None
        expires_at = utcnow() + ttl

        def mail(conn: Connection, old_email: str) -> None:
            link = mailer.email_change_confirmation(
                to=new_email,
                token=issued.token,
                valid_for=ttl,
                link=issued.link,
                code=issued.code,
            )
            mailer.enqueue(conn, link, not_after=expires_at)
            if current is not None and current.link is not None:
                other = mailer.email_change_current_confirmation(
                    to=old_email,
                    new_email=new_email,
                    link=current.link,
                    code=current.code,
                    valid_for=ttl,
                )
            else:
                other = mailer.email_change_notice(to=old_email, new_email=new_email)
            mailer.enqueue(conn, other, not_after=expires_at)

        return await self.store.issue_email_change(
            user_id=user_id,
            new_email=email_key(new_email),
            new_email_as_typed=new_email,
            token_hash=hash_token(issued.token),
            code_hash=issued.code_hash,
            expires_at=expires_at,
            on_issued=mail,
            purpose=EMAIL_CHANGE_NEW if current is not None else EMAIL_CHANGE,
            current_token_hash=hash_token(current.token) if current is not None else None,
            current_code=current.code if current is not None else None,
            replaces=EMAIL_CHANGES,
        )

    def _secure(self, links: VerifyLinks | None) -> bool:
        """Whether an email change asked for this way is GoTrue's secure one: only through
        GoTrue's API (`links`), and only with its switch on."""
        return links is not None and self.gotrue_secure_email_change

    @provider_call
    async def list_sessions(self, claims: AccessClaims) -> list[LiveSession]:
        return await self.store.live_sessions(claims.user_id)

    @provider_call
    async def end_session(self, claims: AccessClaims, session_id: str) -> None:
        if not await self.store.end_session(user_id=claims.user_id, session_id=session_id):
            raise NotFound()

    @provider_call
    async def get_user(self, claims: AccessClaims) -> AuthUser:
        live = await self.store.live_user(claims)
        if live is None:
            raise Unauthorized(token_was_sent=True, details={"reason": "session_ended"})
        user_id, email, confirmed = live
        return AuthUser(id=user_id, email=email, email_confirmed=confirmed)

    async def close(self) -> None:
        """Nothing to release: the database belongs to the app."""

    async def verify_access_token(self, access_token: str) -> AccessClaims:
        return await self._verifier.verify(access_token)

    def session(self, grant: Grant) -> AuthSession:
        """The grant with a new access token for it."""
        user = grant.user
        access_token = self.signer.issue(
            user_id=user.id,
            email=user.email,
            session_id=grant.session_id,
            user_metadata=user.user_metadata,
            app_metadata=user.app_metadata,
            signed_in_at=int(grant.signed_in_at.timestamp()),
        )
        return AuthSession(
            user=AuthUser(id=user.id, email=user.email),
            access_token=access_token,
            refresh_token=grant.refresh_token,
        )

    def _successor(self, refresh_token: str) -> str:
        digest = hmac.new(self._secret, b"refresh:" + refresh_token.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
