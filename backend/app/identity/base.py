"""The `IdentityProvider` protocol: what the routes need from an identity service.

Two implementations exist behind it: `embedded` (this app's own database) and `supabase` (Supabase
Auth / GoTrue). Both give the same semantics: access tokens with Supabase's claims, opaque refresh
tokens rotated on every refresh with a reuse interval, and sign-out that revokes the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from backend.app.identity.tokens import AccessClaims, IssuedAccessToken

__all__ = ["AuthSession", "AuthUser", "IdentityProvider"]


@dataclass(frozen=True, slots=True)
class AuthUser:
    id: str
    email: str


@dataclass(frozen=True, slots=True)
class AuthSession:
    """A signed-in session. `refresh_token` goes into the cookie and nowhere else."""

    user: AuthUser
    access_token: IssuedAccessToken
    refresh_token: str

    def __repr__(self) -> str:  # keep both tokens out of any log line or traceback
        return f"AuthSession(user={self.user!r}, expires_at={self.access_token.expires_at})"


class IdentityProvider(Protocol):
    async def sign_up(self, *, email: str, password: str, display_name: str | None) -> AuthUser:
        """Create the user and its `user_profile` row, atomically.

        Raises:
            WeakPassword: the password breaks the policy.
            UserAlreadyExists: the email is taken.
            ProviderUnavailable: the identity service cannot be reached.
        """
        ...

    async def sign_in_with_password(self, *, email: str, password: str) -> AuthSession:
        """Raises InvalidCredentials (same error for an unknown email and a wrong password)."""
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

    async def sign_out(self, *, refresh_token: str) -> None:
        """Revoke the token's session; an unknown token is not an error."""
        ...

    def verify_access_token(self, access_token: str) -> AccessClaims:
        """Verify locally, without a network call. Raises TokenInvalid."""
        ...
