"""The `IdentityProvider` protocol: what the routes need from an identity service.

Two implementations exist behind it: `embedded` (this app's own database) and `supabase` (Supabase
Auth / GoTrue). Both give the same semantics: access tokens with Supabase's claims, opaque refresh
tokens rotated on every refresh with a reuse interval, and sign-out that revokes the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from backend.app.core.claims import AccessClaims
from backend.app.identity.tokens import IssuedAccessToken

__all__ = ["AuthSession", "AuthUser", "IdentityProvider", "LiveSession", "SignOutScope"]


class SignOutScope(StrEnum):
    """Which sessions a sign-out ends, as GoTrue's `/logout?scope=`."""

    LOCAL = "local"  # this session
    OTHERS = "others"  # every session of the user but this one
    GLOBAL = "global"  # every session of the user


@dataclass(frozen=True, slots=True)
class AuthUser:
    id: str
    email: str
    email_confirmed: bool = True


@dataclass(frozen=True, slots=True)
class AuthSession:
    """A signed-in session. `refresh_token` goes into the cookie and nowhere else."""

    user: AuthUser
    access_token: IssuedAccessToken
    refresh_token: str

    def __repr__(self) -> str:  # keep both tokens out of any log line or traceback
        return f"AuthSession(user={self.user!r}, expires_at={self.access_token.expires_at})"


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A live session as its owner sees it; `last_active_at` is its newest refresh token's
    creation (a sign-in or a refresh), the same time the idle timeout counts from."""

    id: str
    created_at: datetime
    last_active_at: datetime
    user_agent: str | None


class IdentityProvider(Protocol):
    async def sign_up(self, *, email: str, password: str, display_name: str | None) -> AuthUser:
        """Create the user and its `user_profile` row, atomically.

        Raises:
            WeakPassword: the password breaks the policy.
            UserAlreadyExists: the email is taken.
            ProviderUnavailable: the identity service cannot be reached.
        """
        ...

    async def sign_in_with_password(
        self, *, email: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        """Raises InvalidCredentials (same error for an unknown email and a wrong password).
        The new session records `user_agent` where the provider keeps sessions' details."""
        ...

    async def refresh(self, *, refresh_token: str) -> AuthSession:
        """Rotate the refresh token.

        Raises:
            RefreshTokenInvalid: unknown, expired or revoked token or session.
            RefreshTokenReused: a rotated token presented after the reuse interval; the whole
                session is revoked before this is raised.
            ProviderUnavailable: the identity service cannot be reached (keep the cookie).
        """
        ...

    async def sign_out(
        self, *, refresh_token: str, scope: SignOutScope = SignOutScope.LOCAL
    ) -> str | None:
        """End the token's session (or, by `scope`, the user's others or all); an unknown or dead
        token is not an error.

        Returns:
            The session's refresh token from now on, when signing out had to rotate the one
            given (the supabase provider refreshes to get GoTrue an access token); None when it
            is unchanged or the session is over. With scope `others` the caller keeps its
            session: the cookie must then carry this token, or its next refresh is a reuse.

        Raises:
            ProviderUnavailable: the identity service cannot be reached.
        """
        ...

    async def get_user(self, claims: AccessClaims) -> AuthUser:
        """The user of verified claims, asked of the provider: refuses a deleted user or an
        ended session at once, where the token alone would still pass until it expires.

        Raises:
            Unauthorized: the user or the session is gone.
            ProviderUnavailable: the identity service cannot be reached.
        """
        ...

    async def change_password(
        self, claims: AccessClaims, *, current_password: str, new_password: str
    ) -> None:
        """Change the caller's password; every other session of the user ends, this one stays,
        and every outstanding reset token is spent.

        Raises:
            InvalidCurrentPassword, WeakPassword (also `same_password`), Unauthorized (user
            gone), NotSupported.
        """
        ...

    async def request_password_reset(self, *, email: str) -> None:
        """Mail a reset link if the address is known; the same outcome either way.

        Raises:
            NotSupported.
        """
        ...

    async def reset_password(
        self, *, token: str, password: str, user_agent: str | None = None
    ) -> AuthSession:
        """Set a new password with a reset token, end every session, and open a new one.

        Raises:
            AccountTokenInvalid: checked first; WeakPassword: the token stays usable.
            NotSupported.
        """
        ...

    async def resend_confirmation(self, *, email: str) -> None:
        """Mail a new sign-up confirmation link if the address has an unconfirmed sign-up; the
        same outcome either way.

        Raises:
            NotSupported.
        """
        ...

    async def verify_email(self, *, token: str) -> AuthUser:
        """Confirm a sign-up's address, or apply an email change, with the link's token.

        Raises:
            AccountTokenInvalid, UserAlreadyExists (the new address was taken meanwhile),
            NotSupported.
        """
        ...

    async def request_email_change(
        self, claims: AccessClaims, *, new_email: str, current_password: str
    ) -> None:
        """Mail a link that applies the change to the new address and a notice to the old one;
        nothing changes until the link is used.

        Raises:
            InvalidCurrentPassword, UserAlreadyExists, Unauthorized, NotSupported.
        """
        ...

    async def list_sessions(self, claims: AccessClaims) -> list[LiveSession]:
        """The caller's live sessions, newest first.

        Raises:
            NotSupported: the provider does not offer it (supabase, until issue 16).
        """
        ...

    async def end_session(self, claims: AccessClaims, session_id: str) -> None:
        """End one live session of the caller: its refresh and its access tokens stop at once.

        Raises:
            NotFound: no such live session of this user (unknown, ended or another user's).
            NotSupported: as `list_sessions`.
        """
        ...

    async def close(self) -> None:
        """Release what the provider holds (its HTTP connections); called at shutdown."""
        ...

    async def verify_access_token(self, access_token: str) -> AccessClaims:
        """Verify locally (signature, `exp`, `aud`, `iss`), without asking the provider.

        Raises:
            TokenInvalid: the token cannot be trusted.
            SigningKeysUnavailable: the provider's keys could not be fetched.
        """
        ...
