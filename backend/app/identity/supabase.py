"""The Supabase provider: identity delegated to Supabase Auth (GoTrue) through its official client.

- **One client per call**, with `auto_refresh_token=False` and `persist_session=False`: a client
  that signed someone in holds that user's session (and rewrites its own `Authorization`), so a
  shared one would hand one user's session to the next caller. Only the HTTP connection pool is
  shared. The service-role client is used for admin calls only and never signs anyone in.
- GoTrue's refresh token lives only inside the `sb_refresh_token` cookie; this app never stores it.
- Access tokens are verified locally (the project's JWKS, or its legacy HS256 secret); only
  `/auth/me` asks GoTrue for the user, so a deleted user or an ended session is refused at once.
- GoTrue unreachable, slow past the timeout, or answering 5xx is `ProviderUnavailable` (503, the
  cookie kept); every GoTrue error code maps to this app's codes (`_raise_mapped`).
- Sign-up creates the user through the admin API, then its `user_profile` row; if the row cannot
  be written, the GoTrue user is deleted again, so there is never a user without a profile. With
  `EMAIL_CONFIRMATION_REQUIRED` the user is created unconfirmed and GoTrue mails its own
  confirmation (`/resend`), so Supabase's templates and SMTP send it.
- The account lifecycle maps onto GoTrue: `/recover` and `/verify` (`token_hash`, the link's
  token), `PUT /user` with the caller's own access token, `/logout?scope=`. A current password is
  checked by a sign-in of its own, whose session is ended at once. GoTrue lets no user list or
  end one session, so those two routes answer 501 `not_supported`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import httpx
from supabase_auth import AsyncGoTrueAdminAPI, AsyncGoTrueClient
from supabase_auth.errors import AuthError, AuthRetryableError, AuthWeakPasswordError
from supabase_auth.helpers import parse_user_response
from supabase_auth.types import AuthResponse, Session, User

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import (
    AccountTokenInvalid,
    AppError,
    EmailNotConfirmed,
    InvalidCredentials,
    InvalidCurrentPassword,
    NotSupported,
    ProviderUnavailable,
    RateLimited,
    RefreshTokenInvalid,
    RefreshTokenReused,
    RequestInvalid,
    Unauthorized,
    UserAlreadyExists,
    UserBanned,
    WeakPassword,
)
from backend.app.db.engine import Database
from backend.app.identity.base import AuthSession, AuthUser, LiveSession, SignOutScope
from backend.app.identity.emails import email_key
from backend.app.identity.passwords import MIN_PASSWORD_LENGTH, check_password_policy
from backend.app.identity.profiles import clean_display_name, ensure_profile
from backend.app.identity.tokens import IssuedAccessToken, TokenVerifier

__all__ = ["SupabaseIdentityProvider"]

logger = logging.getLogger(__name__)

PROVIDER_TIMEOUT_SECONDS = 5.0

# GoTrue's error codes (docs/gotrue-api.md §3) as this app's errors.
_BY_CODE: dict[str, Callable[[], AppError]] = {
    "invalid_credentials": InvalidCredentials,
    # GoTrue checks the password first, as this app does.
    "email_not_confirmed": EmailNotConfirmed,
    "user_already_exists": UserAlreadyExists,
    "email_exists": UserAlreadyExists,
    "refresh_token_already_used": RefreshTokenReused,
    "refresh_token_not_found": RefreshTokenInvalid,
    "session_not_found": RefreshTokenInvalid,
    "session_expired": RefreshTokenInvalid,
    "user_not_found": RefreshTokenInvalid,
    # GoTrue's own input checks (a malformed refresh token, a password over bcrypt's 72 bytes).
    "validation_failed": RequestInvalid,
    # A link's token unknown, used, expired, or of another kind.
    "otp_expired": AccountTokenInvalid,
    # An admin's ban (`ban_duration`), at sign-in, refresh, `/verify` and on a bearer route.
    # GoTrue's password grant says so before it checks the password (`token.go`): this app
    # cannot check it in GoTrue's place, so a ban is told to whoever knows the address.
    "user_banned": UserBanned,
}


def _raise_mapped(error: AuthError, *, overrides: dict[str, Callable[[], AppError]]) -> NoReturn:
    """Raise this app's error for a GoTrue error. GoTrue's message is not passed on: it may
    quote what the user sent."""
    status = getattr(error, "status", 0) or 0
    if isinstance(error, AuthRetryableError) or status >= 500 or status == 0:
        raise ProviderUnavailable() from error
    if isinstance(error, AuthWeakPasswordError) or error.code == "weak_password":
        reasons = getattr(error, "reasons", None) or []
        raise WeakPassword(details={"reasons": reasons}) from error
    if error.code == "over_request_rate_limit" or status == 429:
        raise RateLimited(retry_after_seconds=60) from error
    mapped = overrides.get(error.code or "") or _BY_CODE.get(error.code or "")
    if mapped is not None:
        raise mapped() from error
    # An answer this app has no meaning for: the provider is not usable as configured.
    raise ProviderUnavailable() from error


@asynccontextmanager
async def _gotrue_errors_mapped(**overrides: Callable[[], AppError]) -> AsyncIterator[None]:
    """Turn whatever the GoTrue client raises into this app's errors (keyword arguments: error
    codes that mean something else for this call)."""
    try:
        yield
    except AuthError as error:
        _raise_mapped(error, overrides=overrides)
    except (httpx.HTTPError, OSError) as error:  # a transport error the client did not wrap
        raise ProviderUnavailable() from error
    except (ValueError, TypeError, KeyError) as error:
        # An answer the client cannot read (not JSON, or not the shape it expects: pydantic's
        # ValidationError is a ValueError): a proxy's page, another service. The provider is
        # not usable as configured, as for an unknown error code. Only the type is logged: the
        # error's text quotes the answer, which may hold a token.
        logger.warning("GoTrue's answer could not be read (%s)", type(error).__name__)
        raise ProviderUnavailable() from None


@asynccontextmanager
async def _mail_refusal_hidden(flow: str) -> AsyncIterator[None]:
    """For a mail whose answer must not tell a known address from an unknown one: GoTrue refuses
    a second mail of a kind to a known user within its interval, or past its hourly mail count,
    and says so (429), where an unknown address gets 200. This app's own limits have already
    counted the request; GoTrue's refusal is logged for the operator and not passed on."""
    try:
        async with _gotrue_errors_mapped():
            yield
    except RateLimited:
        logger.warning("GoTrue refused to send a %s mail (its mail rate limit)", flow)


def _token_refused() -> Unauthorized:
    return Unauthorized(token_was_sent=True, details={"reason": "session_ended"})


def _sign_in_again() -> Unauthorized:
    # GoTrue's secure password change: the session is over a day old and GoTrue wants the nonce
    # of `/reauthenticate`, which this app's contract has no field for. A fresh sign-in is what
    # satisfies it; a 503 would have the client retry something no retry can cure.
    return Unauthorized(token_was_sent=True, details={"reason": "reauthentication_needed"})


def _display_email(user: User) -> str:
    """The address GoTrue holds for the user, spelt as they typed it at sign-up.

    GoTrue keeps the normalized address (see sign_up) and the typed spelling sits in the user
    metadata, which the user may rewrite at will (`PUT /auth/v1/user`): the spelling is used only
    when it is the same address, so the metadata can change the case, never the address.
    """
    verified = user.email or ""
    typed = user.user_metadata.get("email_as_typed")
    if isinstance(typed, str) and typed and email_key(typed) == verified:
        return typed
    return verified


class SupabaseIdentityProvider:
    def __init__(
        self,
        *,
        url: str,
        anon_key: str,
        service_role_key: str,
        verifier: TokenVerifier,
        database: Database,
        site_url: str = "",
        confirmation_required: bool = False,
        password_min_length: int = MIN_PASSWORD_LENGTH,
        timeout_seconds: float = PROVIDER_TIMEOUT_SECONDS,
    ):
        """Args:
        site_url: `SITE_URL`, where GoTrue's links send the user back (`redirect_to`); it must
            be in the project's redirect allow-list, else GoTrue uses its own site URL.
        confirmation_required: `EMAIL_CONFIRMATION_REQUIRED`.
        password_min_length: `PASSWORD_MIN_LENGTH`, the policy this app checks before GoTrue's.
        """
        self._auth_url = url.rstrip("/") + "/auth/v1"
        self._site_url = site_url
        self._confirmation_required = confirmation_required
        self._password_min_length = password_min_length
        self._anon_key = anon_key
        self._service_role_key = service_role_key
        self._verifier = verifier
        self._db = database
        self._http = httpx.AsyncClient(timeout=timeout_seconds)

    async def close(self) -> None:
        await self._http.aclose()

    def _client(self) -> AsyncGoTrueClient:
        """A new public client for one call: it holds nobody's session but the caller's."""
        return AsyncGoTrueClient(
            url=self._auth_url,
            headers={"apikey": self._anon_key, "Authorization": f"Bearer {self._anon_key}"},
            auto_refresh_token=False,
            persist_session=False,
            http_client=self._http,
        )

    def _admin(self) -> AsyncGoTrueAdminAPI:
        """The service-role API: admin calls only, never a sign-in."""
        return AsyncGoTrueAdminAPI(
            url=self._auth_url,
            headers={
                "apikey": self._service_role_key,
                "Authorization": f"Bearer {self._service_role_key}",
            },
            http_client=self._http,
        )

    async def sign_up(self, *, email: str, password: str, display_name: str | None) -> AuthUser:
        """Created through the admin API, so a taken address is always 409 (GoTrue's public
        sign-up answers a look-alike user for a confirmed one and 200 for an unconfirmed one);
        with confirmation required, GoTrue then mails its own confirmation link."""
        check_password_policy(
            password, min_length=self._password_min_length
        )  # the same policy as the embedded provider, first
        attributes: dict[str, Any] = {
            "email": email_key(email),
            "password": password,
            "email_confirm": not self._confirmation_required,
            "user_metadata": {"display_name": display_name, "email_as_typed": email},
        }
        async with _gotrue_errors_mapped():
            user = (await self._admin().create_user(attributes)).user  # type: ignore[arg-type]
        try:
            await ensure_profile(self._db, user_id=user.id, display_name=display_name)
        except Exception:
            # No user without a profile: take the GoTrue user back before reporting the failure.
            async with _gotrue_errors_mapped():
                await self._admin().delete_user(user.id)
            raise
        if self._confirmation_required:
            # The account stands without the mail: a refused or failed send is what the resend
            # route is for, so it is logged, not answered.
            try:
                await self._send_confirmation(user.email or email_key(email))
            except ProviderUnavailable:
                logger.warning("GoTrue did not take the confirmation mail of a new sign-up")
        return AuthUser(
            id=user.id, email=_display_email(user), email_confirmed=not self._confirmation_required
        )

    async def sign_in_with_password(
        self, *, email: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        # `user_agent` is not passed on: GoTrue records its own caller's (this server), and the
        # session list is not offered through this provider yet (issue 16).
        async with _gotrue_errors_mapped():
            response = await self._client().sign_in_with_password(
                {"email": email_key(email), "password": password}
            )
        if response.session is None or response.user is None:
            raise ProviderUnavailable()
        await self._ensure_profile_of(response.user)
        return _auth_session(response.session, response.user)

    async def refresh(self, *, refresh_token: str) -> AuthSession:
        async with _gotrue_errors_mapped(validation_failed=RefreshTokenInvalid):
            response = await self._client().refresh_session(refresh_token)
        if response.session is None or response.user is None:
            raise ProviderUnavailable()
        return _auth_session(response.session, response.user)

    async def sign_out(
        self, *, refresh_token: str, scope: SignOutScope = SignOutScope.LOCAL
    ) -> str | None:
        # GoTrue signs out with a live access token, which the cookie's refresh token gets: that
        # rotates it, so the successor is handed back (scope `others` keeps this session).
        try:
            session = await self.refresh(refresh_token=refresh_token)
        except (RefreshTokenInvalid, RefreshTokenReused):
            return None  # already over
        except UserBanned:
            # GoTrue refuses a banned user's refresh and `/logout` alike: the session cannot be
            # ended from here, and it stays refused while the ban holds. The cookie is cleared.
            return None
        async with _gotrue_errors_mapped():
            await self._client().admin.sign_out(session.access_token.token, scope.value)
        return session.refresh_token if scope is SignOutScope.OTHERS else None

    async def change_password(
        self, claims: AccessClaims, *, current_password: str, new_password: str
    ) -> None:
        """GoTrue's `PUT /user` with the caller's own token ends every other session of the
        user (its own stays) and spends every outstanding link."""
        email = await self._email_of(claims)
        await self._check_current_password(email, current_password)
        if new_password == current_password:
            raise WeakPassword(
                "The new password must differ from the current one",
                details={"reasons": ["same_password"]},
            )
        check_password_policy(new_password, min_length=self._password_min_length)
        await self._update_own_user(claims.token, {"password": new_password})

    async def request_password_reset(self, *, email: str) -> None:
        # GoTrue answers 200 for an unknown address too, and mails the known one's link.
        async with _mail_refusal_hidden("password reset"):
            await self._client().reset_password_for_email(
                email_key(email), {"redirect_to": self._site_url} if self._site_url else {}
            )

    async def reset_password(
        self, *, token: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        """Verify the link's `token_hash` (which signs the user in, spends the link and
        confirms the address), set the password with that session, and end every other one.

        The password policy is checked before the token, where the embedded provider checks the
        token first: GoTrue spends a token when it verifies it, so a refused password would
        otherwise spend a good link."""
        check_password_policy(password, min_length=self._password_min_length)
        async with _gotrue_errors_mapped():
            verified = await self._client().verify_otp({"type": "recovery", "token_hash": token})
        session, user = _session_of(verified)
        try:
            await self._update_own_user(session.access_token, {"password": password})
        except WeakPassword as error:
            # The link proved the mailbox; asking for the password the user already has is
            # not a failure of a reset.
            if error.details.get("reasons") != ["same_password"]:
                await self._end_quietly(session.access_token)
                raise
        except Exception:
            await self._end_quietly(session.access_token)
            raise
        async with _gotrue_errors_mapped():
            await self._client().admin.sign_out(session.access_token, SignOutScope.OTHERS.value)
        await self._ensure_profile_of(user)
        return _auth_session(session, user)

    async def _end_quietly(self, access_token: str) -> None:
        """End the session a verified link opened, when the flow it was for failed: nobody
        holds its refresh token, so it would stay live and unknown. Best effort: the failure
        being reported matters more than this one."""
        try:
            async with _gotrue_errors_mapped():
                await self._client().admin.sign_out(access_token, SignOutScope.LOCAL.value)
        except AppError:
            logger.warning("GoTrue did not end the session of a failed reset")

    async def resend_confirmation(self, *, email: str) -> None:
        # GoTrue sends nothing, and answers 200, for an unknown or confirmed address.
        await self._send_confirmation(email_key(email))

    async def verify_email(self, *, token: str) -> AuthUser:
        """One link route for both kinds, as this app's links: a sign-up confirmation first,
        then an email change (each `token_hash` is of one kind; a miss spends nothing). The
        session GoTrue opens for the link is ended at once: a confirmation signs nobody in."""
        verified: AuthResponse | None = None
        for kind in ("signup", "email_change"):
            try:
                async with _gotrue_errors_mapped():
                    verified = await self._client().verify_otp({"type": kind, "token_hash": token})
                break
            except AccountTokenInvalid:
                continue
        if verified is None:
            raise AccountTokenInvalid()
        # GoTrue's secure email change (a link to each address) answers the first link with no
        # session: this app's contract is one link, to the new address (README).
        session, user = _session_of(verified)
        async with _gotrue_errors_mapped():
            await self._client().admin.sign_out(session.access_token, SignOutScope.LOCAL.value)
        await self._ensure_profile_of(user)
        return AuthUser(id=user.id, email=_display_email(user), email_confirmed=True)

    async def request_email_change(
        self, claims: AccessClaims, *, new_email: str, current_password: str
    ) -> None:
        """GoTrue stores the new address as pending, mails the link to it (and, with secure
        email change, one to the old address too) and changes nothing until it is verified; a
        taken address is 409 (GoTrue's `email_exists`)."""
        email = await self._email_of(claims)
        await self._check_current_password(email, current_password)
        await self._update_own_user(claims.token, {"email": email_key(new_email)})

    # GoTrue offers a user neither a list of their sessions nor the end of one (only
    # `/logout?scope=`), and its admin API has none either: no safe way here.

    async def list_sessions(self, claims: AccessClaims) -> list[LiveSession]:
        raise NotSupported()

    async def end_session(self, claims: AccessClaims, session_id: str) -> None:
        raise NotSupported()

    async def _send_confirmation(self, email: str) -> None:
        options = {"email_redirect_to": self._site_url} if self._site_url else {}
        async with _mail_refusal_hidden("sign-up confirmation"):
            await self._client().resend(
                {"type": "signup", "email": email, "options": options}  # type: ignore[typeddict-item]
            )

    async def _email_of(self, claims: AccessClaims) -> str:
        """The address GoTrue holds for the caller (never one the token or the request says)."""
        async with _gotrue_errors_mapped(
            bad_jwt=_token_refused,
            session_not_found=_token_refused,
            user_not_found=_token_refused,
        ):
            response = await self._client().get_user(claims.token)
        if response is None or not response.user.email:
            raise Unauthorized(token_was_sent=True)
        return response.user.email

    async def _check_current_password(self, email: str, password: str) -> None:
        """GoTrue has no password check of its own: a sign-in with it, whose session ends at
        once (a wrong one is 403 `invalid_current_password`, counted by the session service)."""
        async with _gotrue_errors_mapped(
            invalid_credentials=InvalidCurrentPassword,
            email_not_confirmed=InvalidCurrentPassword,
        ):
            response = await self._client().sign_in_with_password(
                {"email": email, "password": password}
            )
        if response.session is None:
            raise ProviderUnavailable()
        async with _gotrue_errors_mapped():
            await self._client().admin.sign_out(
                response.session.access_token, SignOutScope.LOCAL.value
            )

    async def _update_own_user(self, access_token: str, attributes: dict[str, Any]) -> User:
        """`PUT /user` as the token's own user. Not the client's `update_user`, which needs a
        stored session and refreshes one that is near its expiry with a refresh token this app
        does not hold on a bearer route."""
        client = self._client()
        async with _gotrue_errors_mapped(
            bad_jwt=_token_refused,
            session_not_found=_token_refused,
            user_not_found=_token_refused,
            email_exists=UserAlreadyExists,
            same_password=lambda: WeakPassword(details={"reasons": ["same_password"]}),
            reauthentication_needed=_sign_in_again,
        ):
            response = await client._request(  # the client's own transport
                "PUT",
                "user",
                jwt=access_token,
                body=attributes,
                redirect_to=self._site_url or None,
            )
            return parse_user_response(response).user

    async def get_user(self, claims: AccessClaims) -> AuthUser:
        # GoTrue refuses a deleted user or an ended session with 401/403 (bad_jwt,
        # session_not_found, user_not_found): here, a token that no longer works.
        async with _gotrue_errors_mapped(
            bad_jwt=_token_refused,
            no_authorization=_token_refused,
            session_not_found=_token_refused,
            user_not_found=_token_refused,
        ):
            response = await self._client().get_user(claims.token)
        if response is None:
            raise Unauthorized(token_was_sent=True)
        await self._ensure_profile_of(response.user)
        return AuthUser(
            id=response.user.id,
            email=_display_email(response.user),
            email_confirmed=response.user.email_confirmed_at is not None,
        )

    async def verify_access_token(self, access_token: str) -> AccessClaims:
        return await self._verifier.verify(access_token)

    async def _ensure_profile_of(self, user: User) -> None:
        # The metadata is the user's to write: a name that does not fit the profile is dropped.
        display_name = clean_display_name(user.user_metadata.get("display_name"))
        await ensure_profile(self._db, user_id=user.id, display_name=display_name)


def _session_of(response: AuthResponse) -> tuple[Session, User]:
    """The session and user of a verified link; GoTrue answers both, else it is not usable as
    configured here (e.g. the second step of a secure email change)."""
    if response.session is None or response.user is None:
        raise ProviderUnavailable()
    return response.session, response.user


def _auth_session(session: Session, user: User) -> AuthSession:
    expires_at = session.expires_at or int(time.time()) + session.expires_in
    return AuthSession(
        user=AuthUser(id=user.id, email=_display_email(user)),
        access_token=IssuedAccessToken(
            token=session.access_token, expires_in=session.expires_in, expires_at=expires_at
        ),
        refresh_token=session.refresh_token,
    )
