"""What GoTrue's HTTP API (`api/gotrue/`) needs of the embedded provider beyond the protocol.

User metadata, sessions answered with the whole user record (GoTrue's `AccessTokenResponse`
carries it, so no second read), a password change that ends the user's other sessions, sign-out by
access token, and the admin operations. It shares the provider's store, sessions and rules: a user
made through either API signs in through the other.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import AccountTokenInvalid, SamePassword, UserAlreadyExists
from backend.app.core.logging import log_security_event
from backend.app.db.tables import utcnow
from backend.app.identity.base import AuthSession, SignOutScope
from backend.app.identity.emails import email_key
from backend.app.identity.passwords import hash_password, verify_password
from backend.app.identity.profiles import clean_display_name

from .pkce import (
    AUTHENTICATION_METHODS,
    BadCodeVerifier,
    CodeChallenge,
    FlowStateExpired,
    FlowStateNotFound,
    flow_state_expired,
    verifier_matches,
)
from .provider import (
    CONFIRMATION_REQUEST,
    EMAIL_CHANGE_REQUEST,
    RESET_REQUEST,
    EmbeddedIdentityProvider,
    IssuedLink,
    VerifyLinks,
    provider_call,
)
from .store import (
    EMAIL_CHANGE,
    EMAIL_CHANGE_CURRENT,
    EMAIL_CHANGE_NEW,
    MAGICLINK,
    REAUTHENTICATION,
    RESET,
    SIGNUP,
    Grant,
    NewAuthCode,
    UserRecord,
    code_hash,
    hash_token,
)

__all__ = [
    "REAUTHENTICATION_WINDOW_SECONDS",
    "VERIFY_TYPES",
    "AuthCode",
    "EmailChangePending",
    "EmailUnconfirmed",
    "EmbeddedGoTrue",
    "GoTrueSession",
    "NonceInvalid",
    "NonceRequired",
    "SessionUser",
    "SignUpsNotAllowed",
    "Unconfirmed",
    "VerifyLinks",
]

# GoTrue's verification types (`internal/api/verify.go` `verifyTokenHash`) and the kinds of this
# store's tokens each accepts: recovery and magic link share one, as GoTrue's recovery token;
# `email` tries the confirmation, then the sign-in tokens.
VERIFY_TYPES: dict[str, tuple[str, ...]] = {
    "signup": (SIGNUP,),
    "invite": (SIGNUP,),
    "recovery": (RESET, MAGICLINK),
    "magiclink": (RESET, MAGICLINK),
    "email_change": (EMAIL_CHANGE, EMAIL_CHANGE_NEW, EMAIL_CHANGE_CURRENT),
    "email": (SIGNUP, RESET, MAGICLINK),
}
_CONFIRMING = frozenset({SIGNUP, EMAIL_CHANGE, EMAIL_CHANGE_NEW, EMAIL_CHANGE_CURRENT})
# GoTrue `verify.go` `verifyGet`: its 400 wrapping `issueAuthCode`'s 422, as Go formats it.
_NO_FLOW_STATE = "No associated flow state found. 422: No valid flow state found for user."
# GoTrue `user.go`: with GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION, a session
# older than this needs a nonce to change the password.
REAUTHENTICATION_WINDOW_SECONDS = 24 * 3600


class SignUpsNotAllowed(Exception):
    """`/otp` for an address with no user: `create_user` false (`for_otp`), or sign-up off."""

    def __init__(self, *, for_otp: bool):
        super().__init__("signups not allowed")
        self.for_otp = for_otp


class NonceRequired(Exception):
    """A new password without the re-authentication nonce GoTrue's switch asks for."""


class NonceInvalid(Exception):
    """A wrong, spent or expired re-authentication nonce."""


class LinkRefused(Exception):
    """`generate_link` or `/invite` refused: `reason` is `email_exists`, `user_not_found`,
    `password_required`, `new_email_required`, `secure_email_change_off` (GoTrue makes no
    current-address link without its secure email change) or `bad_type`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class GeneratedLink:
    """GoTrue's `GenerateLinkResponse`: the user and the link's secrets (no mail is sent)."""

    user: UserRecord
    issued: IssuedLink
    verification_type: str

    def __repr__(self) -> str:
        return f"GeneratedLink(user={self.user!r}, verification_type={self.verification_type!r})"


GENERATE_LINK_TYPES = frozenset(
    {"signup", "invite", "magiclink", "recovery", "email_change_current", "email_change_new"}
)


@dataclass(frozen=True, slots=True)
class EmailChangePending:
    """GoTrue's secure email change half done: one address's link (or code) was accepted and
    the other address's is awaited. No session: GoTrue answers `singleConfirmationAccepted`."""

    user_id: str


class EmailUnconfirmed(Exception):
    """Re-authentication of a user whose address is not confirmed."""


@dataclass(frozen=True, slots=True)
class GoTrueSession:
    """A session and its user's record, as GoTrue answers a sign-up, sign-in or refresh."""

    session: AuthSession
    user: UserRecord


@dataclass(frozen=True, slots=True)
class AuthCode:
    """A followed PKCE link's answer: the auth code for `POST /token?grant_type=pkce` (GoTrue
    `issueAuthCode`), and whose it is. The repr leaves the code out."""

    code: str
    user: UserRecord

    def __repr__(self) -> str:
        return f"AuthCode(user={self.user!r})"


@dataclass(frozen=True, slots=True)
class SessionUser:
    """What a bearer's claims still name: the user (None once deleted), whether the session
    is still alive (not signed out, not past its lifetime), and whether the user is banned."""

    user: UserRecord | None
    session_alive: bool
    banned: bool = False


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """A sign-up that waits for its confirmation mail (autoconfirm off): GoTrue answers the bare
    user with `confirmation_sent_at`. For an address already registered the user is a stand-in
    (a random id, no identities: GoTrue's `sanitizeUser`), so the answer reveals nothing."""

    user: UserRecord
    confirmation_sent_at: datetime
    obfuscated: bool


def _session_is_old(claims: AccessClaims) -> bool:
    """Whether the session began over `REAUTHENTICATION_WINDOW_SECONDS` ago (its `amr`)."""
    amr = claims.raw.get("amr")
    started = amr[0].get("timestamp") if isinstance(amr, list) and amr else None
    if not isinstance(started, int):
        return True
    return time.time() - started > REAUTHENTICATION_WINDOW_SECONDS


def _display_name(user_metadata: dict[str, Any]) -> str | None:
    return clean_display_name(user_metadata.get("display_name"))


class EmbeddedGoTrue:
    def __init__(self, provider: EmbeddedIdentityProvider):
        self._provider = provider
        self._store = provider.store

    def _answer(self, grant: Grant) -> GoTrueSession:
        return GoTrueSession(session=self._provider.session(grant), user=grant.user)

    @property
    def confirmation_required(self) -> bool:
        return self._provider.confirmation_required

    @provider_call
    async def sign_up(
        self,
        *,
        email: str,
        password: str,
        user_metadata: dict[str, Any],
        links: VerifyLinks,
        user_agent: str | None = None,
        challenge: CodeChallenge | None = None,
    ) -> GoTrueSession | Unconfirmed:
        """GoTrue's sign-up: the user and its profile (named after `user_metadata.display_name`
        when that is a usable name). Autoconfirm (EMAIL_CONFIRMATION_REQUIRED off): a first
        session. Otherwise the user unconfirmed and a confirmation mail (`links`; with
        `challenge`, a PKCE one), no session; an address already registered gets a stand-in
        user, and a new mail only if it is still unconfirmed. With autoconfirm `challenge` is
        ignored, as GoTrue's (the session is in the answer).

        Raises:
            WeakPassword: as `IdentityProvider.sign_up`.
            UserAlreadyExists: the address is taken, with autoconfirm on.
        """
        confirm = self.confirmation_required
        try:
            user = await self._provider.create_user(
                email,
                password,
                display_name=_display_name(user_metadata),
                user_metadata=user_metadata,
                email_confirmed=not confirm,
            )
        except UserAlreadyExists:
            if not confirm:
                raise
            await self._provider.issue_confirmation(
                email, only_unconfirmed=True, links=links, challenge=challenge
            )
            now = utcnow()
            stand_in = UserRecord(
                id=str(uuid.uuid4()),
                email=email,
                user_metadata=user_metadata,
                app_metadata={},
                email_confirmed_at=None,
                created_at=now,
                updated_at=now,
                last_sign_in_at=None,
            )
            return Unconfirmed(user=stand_in, confirmation_sent_at=now, obfuscated=True)
        if confirm:
            await self._provider.issue_confirmation(
                email, only_unconfirmed=False, links=links, challenge=challenge
            )
            return Unconfirmed(user=user, confirmation_sent_at=utcnow(), obfuscated=False)
        return self._answer(await self._provider.open_session(user, user_agent=user_agent))

    @provider_call
    async def magic_link(
        self,
        *,
        email: str,
        create_user: bool,
        user_metadata: dict[str, Any],
        links: VerifyLinks,
        signup_disabled: bool,
        challenge: CodeChallenge | None = None,
    ) -> None:
        """GoTrue's `/otp` for an email (`magic_link.go`): a confirmed user is mailed a magic
        link and code; an unknown address (when `create_user`) is signed up with a password
        nobody knows and, with autoconfirm, mailed a magic link, else a confirmation; an
        unconfirmed user gets a new confirmation. `challenge`: a PKCE flow for whichever mail
        goes (GoTrue passes it on to its sign-up).

        Raises:
            SignUpsNotAllowed: unknown address and `create_user` false, or sign-up disabled.
        """
        found = await self._store.credentials(email_key=email_key(email))
        user = found.user if found is not None else None
        if user is None:
            if not create_user:
                raise SignUpsNotAllowed(for_otp=True)
            if signup_disabled:
                raise SignUpsNotAllowed(for_otp=False)
            with contextlib.suppress(UserAlreadyExists):  # a racing sign-up: as if it were there
                user = await self._provider.create_user(
                    email,
                    None,  # no password, and no argon2 hash that a known address does not cost
                    display_name=_display_name(user_metadata),
                    user_metadata=user_metadata,
                    email_confirmed=not self.confirmation_required,
                )
        if self.confirmation_required and (user is None or user.email_confirmed_at is None):
            await self._provider.issue_confirmation(
                email, only_unconfirmed=True, links=links, challenge=challenge
            )
            return
        await self._provider.mail_sign_in_link(
            email=email, purpose=MAGICLINK, links=links, challenge=challenge
        )

    async def _new_unconfirmed(
        self, email: str, password: str | None, user_metadata: dict[str, Any]
    ) -> UserRecord | None:
        """A user who has yet to confirm (an invitation, a generated sign-up link); None when
        the address was taken meanwhile."""
        try:
            return await self._provider.create_user(
                email,
                password or None,
                display_name=_display_name(user_metadata),
                user_metadata=user_metadata,
                email_confirmed=False,
            )
        except UserAlreadyExists:
            return None

    @provider_call
    async def invite(
        self, *, email: str, user_metadata: dict[str, Any], links: VerifyLinks
    ) -> UserRecord:
        """GoTrue's `/invite`: a new (or still unconfirmed) user and an invitation mail whose
        link (`type=invite`) confirms the address and signs in.

        Raises:
            LinkRefused: `email_exists`, the address belongs to a confirmed user.
        """
        user = await self._user_by_email(email)
        if user is None:
            user = await self._new_unconfirmed(email, None, user_metadata)
        if user is None or user.email_confirmed_at is not None:
            raise LinkRefused("email_exists")
        await self._provider.issue_confirmation(
            email, only_unconfirmed=True, links=links, kind="invite"
        )
        # Read again: the invitation stamped `invited_at` (GoTrue `mail.go` `sendInvite`).
        return await self._store.user(user.id) or user

    @provider_call
    async def generate_link(
        self,
        *,
        kind: str,
        email: str,
        links: VerifyLinks,
        password: str | None = None,
        new_email: str | None = None,
        user_metadata: dict[str, Any] | None = None,
    ) -> GeneratedLink:
        """GoTrue's `admin/generate_link` (`mail.go`): the link, code and token of a mail,
        stored as any mail's would be, and no mail. `magiclink` for an unknown address signs
        it up (`signup`); `signup` for an unknown address needs `password`.

        Raises:
            LinkRefused, WeakPassword.
        """
        if kind not in GENERATE_LINK_TYPES:
            raise LinkRefused("bad_type")
        user = await self._user_by_email(email)
        metadata = user_metadata or {}
        if user is None:
            if kind in ("recovery", "email_change_current", "email_change_new"):
                raise LinkRefused("user_not_found")
            if kind == "magiclink":
                kind, password = "signup", None  # a user with no password yet
            elif kind == "signup" and not password:
                raise LinkRefused("password_required")
            user = await self._new_unconfirmed(email, password, metadata)
            if user is None:
                raise LinkRefused("email_exists")
        issued: IssuedLink | None
        if kind in ("signup", "invite"):
            if user.email_confirmed_at is not None:
                raise LinkRefused("email_exists")
            issued = await self._provider.issue_confirmation(
                email, only_unconfirmed=True, links=links, kind=kind, send=False
            )
        elif kind in ("magiclink", "recovery"):
            purpose = MAGICLINK if kind == "magiclink" else RESET
            issued = await self._provider.mail_sign_in_link(
                email=email, purpose=purpose, links=links, send=False
            )
        else:
            if kind == "email_change_current" and not self._provider.gotrue_secure_email_change:
                raise LinkRefused("secure_email_change_off")
            if not new_email:
                raise LinkRefused("new_email_required")
            issued = await self._provider.issue_email_change_link(
                user_id=user.id,
                new_email=new_email,
                links=links,
                code_for=email if kind == "email_change_current" else new_email,
                current=kind == "email_change_current",
            )
            if issued is None:
                raise LinkRefused("email_exists")
        if issued is None:  # the user went away meanwhile
            raise LinkRefused("user_not_found")
        if kind == "invite":  # stamped `invited_at` (GoTrue `mail.go`): read again
            user = await self._store.user(user.id) or user
        return GeneratedLink(user=user, issued=issued, verification_type=kind)

    async def _user_by_email(self, email: str) -> UserRecord | None:
        found = await self._store.credentials(email_key=email_key(email))
        return found.user if found is not None else None

    @provider_call
    async def reauthenticate(self, claims: AccessClaims) -> None:
        """GoTrue's `/reauthenticate`: mail the caller a nonce.

        Raises:
            EmailUnconfirmed: the caller's address is not confirmed.
        """
        user = await self._store.user(claims.user_id)
        if user is None or user.email_confirmed_at is None:
            raise EmailUnconfirmed()
        await self._provider.mail_reauthentication(user_id=user.id, email=user.email)

    @provider_call
    async def resend_email_change(
        self, *, email: str, links: VerifyLinks, challenge: CodeChallenge | None = None
    ) -> None:
        """GoTrue's `/resend` `email_change`: a new link for the pending change, if any (the
        same path, `request_mail`, if none)."""
        await self._provider.request_mail(
            email=email, kind=EMAIL_CHANGE_REQUEST, links=links, challenge=challenge
        )

    @provider_call
    async def recover(
        self, *, email: str, links: VerifyLinks, challenge: CodeChallenge | None = None
    ) -> None:
        """GoTrue's `/recover`: a reset mail if the address is known, the same path if not."""
        await self._provider.request_mail(
            email=email, kind=RESET_REQUEST, links=links, challenge=challenge
        )

    @provider_call
    async def resend_confirmation(
        self, *, email: str, links: VerifyLinks, challenge: CodeChallenge | None = None
    ) -> None:
        """GoTrue's `/resend` `signup`: a new confirmation mail if the sign-up is unconfirmed
        (the same path, `request_mail`, if not)."""
        await self._provider.request_mail(
            email=email, kind=CONFIRMATION_REQUEST, links=links, challenge=challenge
        )

    @provider_call
    async def verify(
        self,
        *,
        kind: str,
        token_hash: str | None = None,
        token: str | None = None,
        email: str | None = None,
        user_agent: str | None = None,
    ) -> GoTrueSession | EmailChangePending:
        """GoTrue's `/verify`: spend a link's token (`token_hash`, the link's `token`) or a
        mail's code (`token` with `email`) of the kinds `kind` accepts, confirm the address (or
        apply the email change) and open a session. With the secure email change and
        autoconfirm off, the first of its two tokens only counts (`EmailChangePending`). A PKCE
        link's token works here too (GoTrue's `POST /verify` answers a session whatever the
        flow).

        Raises:
            AccountTokenInvalid: unknown, spent, expired, or of a kind `kind` does not accept.
        """
        user = await self._spend(kind, token_hash=token_hash, token=token, email=email)
        if isinstance(user, EmailChangePending):
            return user
        return self._answer(await self._provider.open_session(user, user_agent=user_agent))

    @provider_call
    async def verify_for_code(self, *, kind: str, token_hash: str) -> AuthCode | EmailChangePending:
        """GoTrue's `GET /verify` of a PKCE link (`pkce_` token): spend it as `verify` does
        and, in the same transaction, issue an auth code on the user's newest flow state of
        that kind of link, instead of a session (GoTrue `issueAuthCode`). The first of a
        secure email change's two verifies issues no code (`EmailChangePending`, as GoTrue's
        `verifyGet` returns before `issueAuthCode`): the second one does, whichever address's
        link it is (the change has one flow state).

        Raises:
            AccountTokenInvalid: as `verify`.
            FlowStateNotFound: `kind` has no flow state (`invite`), or the user has none.
        """
        method = AUTHENTICATION_METHODS.get(kind)
        if method is None:
            # `email`: GoTrue cannot name a flow state for it either (`ParseAuthenticationMethod`
            # fails, a 500 there), and refuses before the token is looked at.
            raise FlowStateNotFound(_NO_FLOW_STATE)
        code = str(uuid.uuid4())  # GoTrue's auth codes are UUIDs; only the hash is stored
        issue = NewAuthCode(authentication_method=method, auth_code_hash=hash_token(code))
        try:
            user = await self._spend(kind, token_hash=token_hash, auth_code=issue)
        except FlowStateNotFound:  # nothing was spent: the token and the user are as they were
            raise FlowStateNotFound(_NO_FLOW_STATE) from None
        if isinstance(user, EmailChangePending):
            return user
        return AuthCode(code=code, user=user)

    @provider_call
    async def exchange_code(
        self, *, auth_code: str, code_verifier: str, user_agent: str | None = None
    ) -> GoTrueSession:
        """GoTrue's `POST /token?grant_type=pkce` (`token.go` `PKCE`): the code's flow state,
        unexpired, whose challenge the verifier answers, is deleted and a session opened.

        Raises:
            FlowStateNotFound: no such code (never issued, exchanged already, its user gone).
            FlowStateExpired: past `FLOW_STATE_LIFETIME` (the flow state is kept, as GoTrue).
            BadCodeVerifier: the verifier does not match (the flow state is kept, as GoTrue).
        """
        state = await self._store.flow_state(auth_code_hash=hash_token(auth_code))
        if state is None:
            raise FlowStateNotFound()
        if flow_state_expired(
            authentication_method=state.authentication_method,
            created_at=state.created_at,
            auth_code_issued_at=state.auth_code_issued_at,
            now=utcnow(),
        ):
            raise FlowStateExpired()
        if not verifier_matches(state.challenge, code_verifier):
            raise BadCodeVerifier(user_id=state.user_id)
        user = await self._store.take_flow_state(state.id)
        if user is None:  # exchanged by a racing request, or the user deleted meanwhile
            raise FlowStateNotFound()
        return self._answer(await self._provider.open_session(user, user_agent=user_agent))

    async def _spend(
        self,
        kind: str,
        *,
        token_hash: str | None = None,
        token: str | None = None,
        email: str | None = None,
        auth_code: NewAuthCode | None = None,
    ) -> UserRecord | EmailChangePending:
        if token_hash is not None:
            hashed = hash_token(token_hash)
        elif token is not None and email is not None:
            hashed = code_hash(email_key(email), token)
        else:
            raise AccountTokenInvalid()
        purposes = VERIFY_TYPES[kind]
        secure = self._provider.gotrue_secure_email_change
        if token_hash is None and not secure:
            # GoTrue's `FindUserForEmailChange`: the current address's code only with the switch.
            purposes = tuple(p for p in purposes if p != EMAIL_CHANGE_CURRENT)
        # GoTrue's `emailChangeVerify`: two verifies unless autoconfirm is on.
        if EMAIL_CHANGE_NEW in purposes and secure and self.confirmation_required:
            first = await self._store.confirm_email_change_once(
                token_hash=hashed, purposes=(EMAIL_CHANGE_NEW, EMAIL_CHANGE_CURRENT)
            )
            if first is not None and first[1]:
                return EmailChangePending(user_id=first[0])
        user = None
        confirming = tuple(p for p in purposes if p in _CONFIRMING)
        if confirming:
            user = await self._store.confirm_email(
                token_hash=hashed, purposes=confirming, auth_code=auth_code
            )
        signing_in = tuple(p for p in purposes if p not in _CONFIRMING)
        if user is None and signing_in:
            user = await self._store.spend_sign_in_token(
                token_hash=hashed, purposes=signing_in, auth_code=auth_code
            )
        if user is None:
            raise AccountTokenInvalid()
        return user

    @provider_call
    async def sign_in(
        self, *, email: str, password: str, user_agent: str | None = None
    ) -> GoTrueSession:
        """Raises InvalidCredentials, EmailNotConfirmed (as the provider's sign-in), UserBanned:
        before the password is checked, as GoTrue's password grant (`token.go`)."""
        return self._answer(
            await self._provider.sign_in(
                email=email, password=password, user_agent=user_agent, ban_before_password=True
            )
        )

    @provider_call
    async def refresh(self, *, refresh_token: str) -> GoTrueSession:
        """Raises RefreshTokenInvalid, RefreshTokenReused, UserBanned (as the provider's
        refresh)."""
        return self._answer(await self._provider.rotate(refresh_token))

    async def verify_access_token(self, access_token: str) -> AccessClaims:
        return await self._provider.verify_access_token(access_token)

    @provider_call
    async def session_user(self, claims: AccessClaims) -> SessionUser:
        """The user of verified claims and whether their session lives (GoTrue tells a deleted
        user and an ended session apart: `user_not_found`, `session_not_found`), and whether the
        user is banned (GoTrue `requireAuthentication` refuses a token issued before the ban)."""
        user = await self._store.user(claims.user_id)
        if user is None:
            return SessionUser(user=None, session_alive=False)
        alive = await self._store.live_user(claims)
        return SessionUser(
            user=user, session_alive=alive is not None, banned=user.banned_at(utcnow())
        )

    @provider_call
    async def update_user(
        self,
        claims: AccessClaims,
        *,
        password: str | None = None,
        user_metadata: dict[str, Any] | None = None,
        nonce: str | None = None,
        require_reauthentication: bool = False,
        new_email: str | None = None,
        links: VerifyLinks | None = None,
        challenge: CodeChallenge | None = None,
    ) -> UserRecord | None:
        """Change the password and/or merge `user_metadata` (a null value deletes its key),
        and with `new_email` mail a link (and code) to the new address and a notice to the old
        one (the address changes on verify; `challenge`: a PKCE flow). A new password ends every
        other session of the user; the caller's stays.

        All or nothing, as GoTrue's `UserUpdate` (every check, then one transaction): a taken
        new address, a refused password or nonce changes nothing. The nonce is checked after
        the password policy (so a weak password leaves it usable) and before the password is
        compared with the current one (so that comparison answers nobody without the nonce).

        Returns:
            The updated user, or None if it was deleted meanwhile.

        Raises:
            WeakPassword: the new password breaks the policy.
            SamePassword: it is the password the user already has.
            NonceRequired, NonceInvalid: `require_reauthentication` and a session over a day
                old (GoTrue's rule), without a usable nonce from `reauthenticate`.
            UserAlreadyExists: `new_email` is another user's.
        """
        if password is not None:
            self._provider.check_password(password)
        if new_email is not None and await self._user_by_email(new_email) is not None:
            raise UserAlreadyExists()
        if password is not None and require_reauthentication and _session_is_old(claims):
            if not nonce:
                raise NonceRequired()
            spent = await self._store.spend_user_token(
                token_hash=code_hash(email_key(claims.email), nonce),
                purpose=REAUTHENTICATION,
                user_id=claims.user_id,
            )
            if not spent:
                raise NonceInvalid()
        password_hash = None
        if password is not None:
            current = await self._store.password_hash(claims.user_id)
            if current is not None:
                same = await verify_password(password_hash=current, password=password)
                if same.matches:
                    raise SamePassword()
            password_hash = await hash_password(password)
        user = await self._store.update_user(
            claims.user_id,
            user_metadata=user_metadata,
            password_hash=password_hash,
            keep_session_id=claims.session_id,
        )
        # Taken now only by a sign-up racing this request: the rest stands, as it would after a
        # change that was asked for a moment later.
        if (
            user is not None
            and new_email is not None
            and not await self._provider.mail_email_change(
                user_id=claims.user_id, new_email=new_email, links=links, challenge=challenge
            )
        ):
            raise UserAlreadyExists()
        return user

    @provider_call
    async def end_sessions(self, claims: AccessClaims, scope: SignOutScope) -> None:
        """Sign out by access token (GoTrue's `/logout`): this session, the others, or all."""
        await self._store.revoke_sessions(
            user_id=claims.user_id, session_id=claims.session_id, scope=scope
        )

    @provider_call
    async def admin_create_user(
        self,
        *,
        email: str,
        password: str | None,
        email_confirm: bool,
        user_metadata: dict[str, Any],
        app_metadata: dict[str, Any],
        ban_for: timedelta | None = None,
    ) -> UserRecord:
        """GoTrue's admin create: no password means none that works (`unusable_password_hash`);
        `ban_for` as `admin_update_user`'s.

        Raises:
            WeakPassword: a given password breaks this app's policy.
            UserAlreadyExists: the email is taken.
        """
        user = await self._provider.create_user(
            email,
            password or None,
            display_name=_display_name(user_metadata),
            user_metadata=user_metadata,
            app_metadata=app_metadata,
            email_confirmed=email_confirm,
            ban_for=ban_for,
        )
        if user.banned_at(utcnow()):  # a new user has no ban to lift
            _log_ban(user, ban_for)
        return user

    @provider_call
    async def admin_update_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        password: str | None = None,
        user_metadata: dict[str, Any] | None = None,
        app_metadata: dict[str, Any] | None = None,
        email_confirm: bool = False,
        ban_for: timedelta | None = None,
    ) -> UserRecord | None:
        """GoTrue's admin update (`adminUserUpdate`): the address is set at once (no mail), a
        new password ends **every** session of the user, metadata is merged. `ban_for` (GoTrue's
        `ban_duration`) bans the user until now + `ban_for`, zero lifts the ban, None leaves it;
        a ban ends no session, it refuses them while it holds (`IdentityStore.update_user`).

        Returns:
            The updated user, or None if there is none.

        Raises:
            WeakPassword, UserAlreadyExists (the address is another user's).
        """
        password_hash = None
        if password is not None:
            self._provider.check_password(password)
            password_hash = await hash_password(password)
        user = await self._store.update_user(
            user_id,
            user_metadata=user_metadata,
            app_metadata=app_metadata,
            password_hash=password_hash,
            email=(email_key(email), email) if email is not None else None,
            confirm_email=email_confirm,
            ban_for=ban_for,
        )
        if user is not None:
            _log_ban(user, ban_for)
        return user

    @provider_call
    async def admin_get_user(self, user_id: str) -> UserRecord | None:
        return await self._store.user(user_id)

    @provider_call
    async def admin_list_users(self, *, page: int, per_page: int) -> tuple[list[UserRecord], int]:
        return await self._store.users_page(page=page, per_page=per_page)

    @provider_call
    async def admin_delete_user(self, user_id: str, *, soft: bool = False) -> bool:
        """GoTrue's `adminUserDelete`: for good (sessions, profile and items with it), or with
        `soft` as GoTrue's `should_soft_delete` (`IdentityStore.soft_delete_user`). False if
        there is no such user."""
        if soft:
            return await self._store.soft_delete_user(user_id)
        return await self._store.delete_user(user_id)


def _log_ban(user: UserRecord, ban_for: timedelta | None) -> None:
    """A ban or its lifting is an operator's decision worth a line in the security log: who,
    and until when (no address, no token)."""
    if ban_for is None:
        return
    if user.banned_at(utcnow()):
        until = user.banned_until.isoformat() if user.banned_until else None
        log_security_event("user_banned", user_id=user.id, reason="admin", banned_until=until)
    else:
        log_security_event("user_unbanned", user_id=user.id, reason="admin")
