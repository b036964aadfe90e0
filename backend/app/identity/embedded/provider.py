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
from typing import Any, ParamSpec, TypedDict, TypeVar
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
    UserBanned,
    WeakPassword,
)
from backend.app.db.engine import DatabaseUnavailable
from backend.app.db.tables import utcnow
from backend.app.identity.base import AuthSession, AuthUser, LiveSession, SignOutScope
from backend.app.identity.emails import email_key
from backend.app.identity.passwords import (
    check_password_policy,
    hash_password,
    unusable_password_hash,
    verify_password,
    verify_unknown_user,
)
from backend.app.identity.tokens import TokenSigner, TokenVerifier
from backend.app.mail import Mailer, MailMessage, MailRequest, Resolved

from .pkce import PKCE_PREFIX, CodeChallenge
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
    NewFlowState,
    Reused,
    UserRecord,
    code_hash,
    hash_token,
    issue_account_token_in,
    issue_email_change_in,
    pending_email_change_in,
)

__all__ = [
    "CONFIRMATION_REQUEST",
    "EMAIL_CHANGE_REQUEST",
    "RESET_REQUEST",
    "EmbeddedIdentityProvider",
    "IssuedLink",
    "VerifyLinks",
    "provider_call",
]

# The mails asked for on a request's path and resolved by the mail sender (`request_mail`).
RESET_REQUEST = "password_reset"
CONFIRMATION_REQUEST = "signup_confirmation"
EMAIL_CHANGE_REQUEST = "email_change"  # GoTrue's `/resend` `email_change`: a pending change

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


def _draw(
    email: str, links: VerifyLinks | None, kind: str, challenge: CodeChallenge | None = None
) -> IssuedLink:
    token = secrets.token_urlsafe(32)  # 256 bits
    if challenge is not None:
        # GoTrue `addFlowPrefixToToken`: `GET /verify` tells a PKCE link by it. It is part of
        # the token (and of its hash), so a link stripped of it matches nothing.
        token = PKCE_PREFIX + token
    if links is None:
        return IssuedLink(token=token, link=None, code=None, code_hash=None)
    code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
    return IssuedLink(
        token=token,
        link=links.link(token, kind),
        code=code,
        code_hash=code_hash(email_key(email), code),
    )


class _EmailChangeTokens(TypedDict):
    token_hash: str
    code_hash: str | None
    purpose: str
    current_token_hash: str | None
    current_code: str | None
    replaces: tuple[str, ...]


def _email_change_tokens(issued: IssuedLink, current: IssuedLink | None) -> _EmailChangeTokens:
    """The store's arguments for an email change's tokens (`issue_email_change_in`): one, or
    with `current` (GoTrue's secure email change) one to each address, replacing every token
    of the pending change."""
    return _EmailChangeTokens(
        token_hash=hash_token(issued.token),
        code_hash=issued.code_hash,
        purpose=EMAIL_CHANGE_NEW if current is not None else EMAIL_CHANGE,
        current_token_hash=hash_token(current.token) if current is not None else None,
        current_code=current.code if current is not None else None,
        replaces=EMAIL_CHANGES,
    )


def _email_change_mails(
    mailer: Mailer,
    *,
    old_email: str,
    new_email: str,
    issued: IssuedLink,
    current: IssuedLink | None,
    valid_for: timedelta,
) -> tuple[MailMessage, MailMessage]:
    """The new address's link, and the current address's own link and code (GoTrue's secure
    email change) or else the notice."""
    link = mailer.email_change_confirmation(
        to=new_email, token=issued.token, valid_for=valid_for, link=issued.link, code=issued.code
    )
    if current is not None and current.link is not None:
        other = mailer.email_change_current_confirmation(
            to=old_email,
            new_email=new_email,
            link=current.link,
            code=current.code,
            valid_for=valid_for,
        )
    else:
        other = mailer.email_change_notice(to=old_email, new_email=new_email)
    return link, other


P = ParamSpec("P")
R = TypeVar("R")


def _flow(challenge: CodeChallenge | None, authentication_method: str) -> NewFlowState | None:
    if challenge is None:
        return None
    return NewFlowState(challenge=challenge, authentication_method=authentication_method)


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
        password: str | None,
        *,
        display_name: str | None,
        user_metadata: dict[str, Any],
        app_metadata: dict[str, Any] | None = None,
        email_confirmed: bool = True,
        ban_for: timedelta | None = None,
    ) -> UserRecord:
        """A user with its profile, after the password policy; `password` None: a user with no
        usable password (`unusable_password_hash`), until a link signs them in to set one.
        `ban_for`: the admin API's.

        Raises:
            WeakPassword, UserAlreadyExists: as `sign_up`.
        """
        if password is None:
            password_hash = await unusable_password_hash()
        else:
            self.check_password(password)
            password_hash = await hash_password(password)
        return await self.store.create_user(
            email=email_key(email),
            email_as_typed=email,
            password_hash=password_hash,
            display_name=display_name,
            user_metadata=user_metadata,
            app_metadata=app_metadata,
            email_confirmed=email_confirmed,
            ban_for=ban_for,
        )

    @provider_call
    async def sign_in_with_password(
        self, *, email: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        return self.session(
            await self.sign_in(email=email, password=password, user_agent=user_agent)
        )

    async def sign_in(
        self,
        *,
        email: str,
        password: str,
        user_agent: str | None = None,
        ban_before_password: bool = False,
    ) -> Grant:
        """Check the password (a dummy verify for an unknown address) and open a session.

        Args:
            ban_before_password: refuse a banned user before the password is checked, as
                GoTrue's password grant does (`token.go`), for GoTrue's API only. `/auth`
                checks the password first, so a ban is told only to who knows the password.

        Raises:
            InvalidCredentials: unknown address or wrong password, alike.
            UserBanned: the right password of a banned user (see `ban_before_password`).
            EmailNotConfirmed: the right password of an unconfirmed address.
        """
        found = await self.store.credentials(email_key=email_key(email))
        if found is None:
            await verify_unknown_user(password=password)
            raise InvalidCredentials()
        if ban_before_password and found.user.banned_at(utcnow()):
            raise UserBanned()
        check = await verify_password(password_hash=found.password_hash, password=password)
        if not check.matches:
            raise InvalidCredentials()
        if found.user.banned_at(utcnow()):
            raise UserBanned()
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
    ) -> str | None:
        session = await self.store.session_of(refresh_token)
        if session is not None:
            session_id, user_id = session
            await self.store.revoke_sessions(user_id=user_id, session_id=session_id, scope=scope)
        return None  # the token was not rotated

    @provider_call
    async def change_password(
        self, claims: AccessClaims, *, current_password: str, new_password: str
    ) -> None:
        await self._refuse_banned(claims)
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
        await self.request_mail(email=email, kind=RESET_REQUEST)

    async def request_mail(
        self,
        *,
        email: str,
        kind: str,
        links: VerifyLinks | None = None,
        challenge: CodeChallenge | None = None,
    ) -> None:
        """Ask for a mail whose recipient may have no account (`kind` RESET_REQUEST: a reset
        link; CONFIRMATION_REQUEST: a new confirmation link for an unconfirmed sign-up;
        EMAIL_CHANGE_REQUEST: a new link for a pending email change, and its notice to the
        current address), with `links`, GoTrue's link and code, and `challenge`, a PKCE
        flow (stored with the token). Nothing tells a caller whether the address is known.

        Nor does the time it takes (ASVS V6.3.8): the request's path writes one outbox row (the
        request, no token) in one transaction for every address, looking nothing up. The mail
        sender resolves it after the answer (`resolve_mail_request`): for a known address it
        issues the token and renders the mail in one transaction, for an unknown one it deletes
        the row. The token's lifetime counts from that issuance; the request stays durable in
        the outbox through a restart or an SMTP outage until then.

        Raises:
            NotSupported: no mailer.
        """
        if self._mailer is None:
            raise NotSupported()
        mailer = self._mailer
        ttl = self._reset_ttl if kind == RESET_REQUEST else self._confirm_ttl
        params: dict[str, str] = {}
        if links is not None:
            params |= {"verify_url": links.verify_url, "redirect_to": links.redirect_to}
        if challenge is not None:
            params |= {"code_challenge": challenge.value, "code_challenge_method": challenge.method}
        request = MailRequest(kind=kind, email=email, params=params)
        not_after = utcnow() + ttl
        await self.store.request_mail(
            lambda conn: mailer.request(conn, request, not_after=not_after)
        )

    def resolve_mail_request(self, conn: Connection, request: MailRequest) -> Resolved | None:
        """The mail sender's half of `request_mail`, in its transaction (a `MailResolver`):
        for the user of the address (for a confirmation, still unconfirmed) spend the older
        tokens of that purpose, store a new one and render its mail to the stored address;
        None, with nothing written, when there is no such user."""
        mailer = self._mailer
        if mailer is None or request.kind not in (
            RESET_REQUEST,
            CONFIRMATION_REQUEST,
            EMAIL_CHANGE_REQUEST,
        ):
            return None
        params = request.params
        links = (
            VerifyLinks(verify_url=params["verify_url"], redirect_to=params["redirect_to"])
            if "verify_url" in params
            else None
        )
        challenge = (
            CodeChallenge(value=params["code_challenge"], method=params["code_challenge_method"])
            if "code_challenge" in params
            else None
        )
        if request.kind == EMAIL_CHANGE_REQUEST:
            return self._resolve_email_change(conn, request.email, links, challenge)
        reset = request.kind == RESET_REQUEST
        ttl = self._reset_ttl if reset else self._confirm_ttl
        kind = "recovery" if reset else "signup"
        issued = _draw(request.email, links, kind, challenge)
        expires_at = utcnow() + ttl
        stored_email = issue_account_token_in(
            conn,
            email_key=email_key(request.email),
            purpose=RESET if reset else SIGNUP,
            token_hash=hash_token(issued.token),
            code_hash=issued.code_hash,
            expires_at=expires_at,
            only_unconfirmed=not reset,
            flow=_flow(challenge, kind if reset else "email/signup"),
        )
        if stored_email is None:
            return None
        render = mailer.password_reset if reset else mailer.signup_confirmation
        message = render(
            to=stored_email, token=issued.token, valid_for=ttl, link=issued.link, code=issued.code
        )
        return Resolved(message=message, not_after=expires_at)

    def _resolve_email_change(
        self,
        conn: Connection,
        email: str,
        links: VerifyLinks | None,
        challenge: CodeChallenge | None,
    ) -> Resolved | None:
        """As `mail_email_change` for `email`'s pending change, if it has one: the link to the
        new address (the resolved mail) and the notice to the current one (enqueued beside);
        with GoTrue's secure email change, both tokens replaced and both addresses' links and
        codes mailed, as GoTrue's `/resend` `email_change` (`sendEmailChange`)."""
        assert self._mailer is not None  # noqa: S101 -- checked by the caller
        mailer, ttl = self._mailer, self._confirm_ttl
        pending = pending_email_change_in(conn, email_key=email_key(email))
        if pending is None:
            return None
        user_id, new_email = pending
        issued, current = self._draw_email_change(new_email, links, challenge)
        expires_at = utcnow() + ttl
        old_email = issue_email_change_in(
            conn,
            user_id=user_id,
            new_email=email_key(new_email),
            new_email_as_typed=new_email,
            expires_at=expires_at,
            **_email_change_tokens(issued, current),
            flow=_flow(challenge, "email_change"),
        )
        if old_email is None:
            return None
        link, other = _email_change_mails(
            mailer,
            old_email=old_email,
            new_email=new_email,
            issued=issued,
            current=current,
            valid_for=ttl,
        )
        mailer.enqueue(conn, other, not_after=expires_at)
        return Resolved(message=link, not_after=expires_at)

    async def mail_sign_in_link(
        self,
        *,
        email: str,
        purpose: str,
        links: VerifyLinks | None = None,
        send: bool = True,
        challenge: CodeChallenge | None = None,
    ) -> IssuedLink | None:
        """Mail a reset link (`purpose` RESET) or a magic link (MAGICLINK, GoTrue's API only) to
        the stored address of `email`'s user, if there is one; spend the user's older tokens of
        that purpose. Nothing in the answer tells a caller whether the address is known.

        Used where the token is wanted at once: GoTrue's magic link (whose `create_user: false`
        answer tells known from unknown anyway) and `generate_link` (`send` False, an admin's).
        A known and an unknown address take one path as far as it can go (a decoy render for
        the unknown one), but a known one also pays the token's and the outbox row's INSERTs:
        a reset link or a resent confirmation, whose timing must not tell, is asked for with
        `request_mail` instead.

        `challenge` (GoTrue's API): a PKCE flow, its state stored with the token.
        """
        if self._mailer is None:
            raise NotSupported()
        mailer, ttl = self._mailer, self._reset_ttl
        kind = "recovery" if purpose == RESET else "magiclink"
        issued = _draw(email, links, kind, challenge)
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
            flow=_flow(challenge, kind),
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
        older ones); a confirmed or unknown address takes the same path (`request_mail`) and
        gets nothing."""
        await self.request_mail(email=email, kind=CONFIRMATION_REQUEST)

    async def issue_confirmation(
        self,
        email: str,
        *,
        only_unconfirmed: bool,
        links: VerifyLinks | None = None,
        kind: str = "signup",
        send: bool = True,
        challenge: CodeChallenge | None = None,
    ) -> IssuedLink | None:
        """Mail a sign-up confirmation link (with `links`, GoTrue's link and code; `kind`
        `invite`, an invitation) to the stored address of `email`'s user. None when there is no
        such user (or, `only_unconfirmed`, it is already confirmed). `send` False: only store
        the token and return its secrets (GoTrue's `generate_link`). `challenge`: a PKCE flow
        (`email/signup`, GoTrue's name). Raises NotSupported without a mailer."""
        if self._mailer is None:
            raise NotSupported()
        mailer, ttl = self._mailer, self._confirm_ttl
        issued = _draw(email, links, kind, challenge)
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
            invite=kind == "invite",
            flow=_flow(challenge, "email/signup"),
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
        await self._refuse_banned(claims)
        password_hash = await self.store.password_hash(claims.user_id)
        if password_hash is None:
            raise Unauthorized(token_was_sent=True, details={"reason": "user_gone"})
        check = await verify_password(password_hash=password_hash, password=current_password)
        if not check.matches:
            raise InvalidCurrentPassword()
        if not await self.mail_email_change(user_id=claims.user_id, new_email=new_email):
            raise UserAlreadyExists()

    async def mail_email_change(
        self,
        *,
        user_id: str,
        new_email: str,
        links: VerifyLinks | None = None,
        challenge: CodeChallenge | None = None,
    ) -> bool:
        """Unless the new address is taken (or the user gone: False), store a token carrying
        the new address and mail its link (with `links`, GoTrue's link and code) to the new
        address, a notice without token to the old one, in one transaction. The change is
        applied by `verify_email` (GoTrue's API: `/verify` type `email_change`). `challenge`: a
        PKCE flow.

        GoTrue's API with its secure email change (`gotrue_secure_email_change`): the old
        address gets its own link and code instead of the notice (GoTrue's `sendEmailChange`,
        and its template mailer's `EmailChangeMail`: one mail to each address, each with that
        address's code as `{{ .Token }}`); `/verify` then wants both."""
        if self._mailer is None:
            raise NotSupported()
        mailer, ttl = self._mailer, self._confirm_ttl
        issued, current = self._draw_email_change(new_email, links, challenge)
        expires_at = utcnow() + ttl

        def mail(conn: Connection, old_email: str) -> None:
            for message in _email_change_mails(
                mailer,
                old_email=old_email,
                new_email=new_email,
                issued=issued,
                current=current,
                valid_for=ttl,
            ):
                mailer.enqueue(conn, message, not_after=expires_at)

        return await self.store.issue_email_change(
            user_id=user_id,
            new_email=email_key(new_email),
            new_email_as_typed=new_email,
            expires_at=expires_at,
            on_issued=mail,
            **_email_change_tokens(issued, current),
            flow=_flow(challenge, "email_change"),
        )

    def _secure(self, links: VerifyLinks | None) -> bool:
        """Whether an email change asked for this way is GoTrue's secure one: only through
        GoTrue's API (`links`), and only with its switch on."""
        return links is not None and self.gotrue_secure_email_change

    def _draw_email_change(
        self, new_email: str, links: VerifyLinks | None, challenge: CodeChallenge | None
    ) -> tuple[IssuedLink, IssuedLink | None]:
        """The new address's token (link and code) and, for GoTrue's secure email change, the
        current address's (its code's hash needs the stored current address: the store makes
        it). With `challenge` both are PKCE links, as GoTrue's `sendEmailChange` prefixes both;
        the change's one flow state is stored beside them."""
        issued = _draw(new_email, links, "email_change", challenge)
        secure = self._secure(links)
        return issued, _draw("", links, "email_change", challenge) if secure else None

    @provider_call
    async def list_sessions(self, claims: AccessClaims) -> list[LiveSession]:
        await self._refuse_banned(claims)
        return await self.store.live_sessions(claims.user_id)

    @provider_call
    async def end_session(self, claims: AccessClaims, session_id: str) -> None:
        await self._refuse_banned(claims)
        if not await self.store.end_session(user_id=claims.user_id, session_id=session_id):
            raise NotFound()

    @provider_call
    async def get_user(self, claims: AccessClaims) -> AuthUser:
        live = await self.store.live_user(claims)
        if live is None:
            raise Unauthorized(token_was_sent=True, details={"reason": "session_ended"})
        user_id, email, confirmed, banned = live
        if banned:  # a token issued before the ban (GoTrue `requireAuthentication`)
            raise UserBanned()
        return AuthUser(id=user_id, email=email, email_confirmed=confirmed)

    async def _refuse_banned(self, claims: AccessClaims) -> None:
        """The bearer routes of the lifecycle refuse a banned user as `get_user` does (GoTrue
        refuses one on every route behind `requireAuthentication`).

        Raises:
            UserBanned.
        """
        user = await self.store.user(claims.user_id)
        if user is not None and user.banned_at(utcnow()):
            raise UserBanned()

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
