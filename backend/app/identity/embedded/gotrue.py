"""What GoTrue's HTTP API (`api/gotrue/`) needs of the embedded provider beyond the protocol.

User metadata, sessions answered with the whole user record (GoTrue's `AccessTokenResponse`
carries it, so no second read), a password change that ends the user's other sessions, sign-out by
access token, and the admin operations. It shares the provider's store, sessions and rules: a user
made through either API signs in through the other.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import SamePassword
from backend.app.identity.base import AuthSession, SignOutScope
from backend.app.identity.passwords import check_password_policy, hash_password, verify_password
from backend.app.identity.profiles import clean_display_name

from .provider import EmbeddedIdentityProvider, provider_call
from .store import Grant, UserRecord

__all__ = ["EmbeddedGoTrue", "GoTrueSession", "SessionUser"]

# A password GoTrue's admin API makes up when none is given: nobody knows it.
_RANDOM_PASSWORD_BYTES = 48


@dataclass(frozen=True, slots=True)
class GoTrueSession:
    """A session and its user's record, as GoTrue answers a sign-up, sign-in or refresh."""

    session: AuthSession
    user: UserRecord


@dataclass(frozen=True, slots=True)
class SessionUser:
    """What a bearer's claims still name: the user (None once deleted), and whether the session
    is still alive (not signed out, not past its lifetime)."""

    user: UserRecord | None
    session_alive: bool


def _display_name(user_metadata: dict[str, Any]) -> str | None:
    return clean_display_name(user_metadata.get("display_name"))


class EmbeddedGoTrue:
    def __init__(self, provider: EmbeddedIdentityProvider):
        self._provider = provider
        self._store = provider.store

    def _answer(self, grant: Grant) -> GoTrueSession:
        return GoTrueSession(session=self._provider.session(grant), user=grant.user)

    @provider_call
    async def sign_up(
        self,
        *,
        email: str,
        password: str,
        user_metadata: dict[str, Any],
        user_agent: str | None = None,
    ) -> GoTrueSession:
        """GoTrue's sign-up with autoconfirm: the user, its profile (named after
        `user_metadata.display_name` when that is a usable name), and a first session.

        Raises:
            WeakPassword, UserAlreadyExists: as `IdentityProvider.sign_up`.
        """
        user = await self._provider.create_user(
            email, password, display_name=_display_name(user_metadata), user_metadata=user_metadata
        )
        return self._answer(await self._provider.open_session(user, user_agent=user_agent))

    @provider_call
    async def sign_in(
        self, *, email: str, password: str, user_agent: str | None = None
    ) -> GoTrueSession:
        """Raises InvalidCredentials, EmailNotConfirmed (as the provider's sign-in)."""
        return self._answer(
            await self._provider.sign_in(email=email, password=password, user_agent=user_agent)
        )

    @provider_call
    async def refresh(self, *, refresh_token: str) -> GoTrueSession:
        """Raises RefreshTokenInvalid, RefreshTokenReused (as the provider's refresh)."""
        return self._answer(await self._provider.rotate(refresh_token))

    async def verify_access_token(self, access_token: str) -> AccessClaims:
        return await self._provider.verify_access_token(access_token)

    @provider_call
    async def session_user(self, claims: AccessClaims) -> SessionUser:
        """The user of verified claims and whether their session lives (GoTrue tells a deleted
        user and an ended session apart: `user_not_found`, `session_not_found`)."""
        user = await self._store.user(claims.user_id)
        if user is None:
            return SessionUser(user=None, session_alive=False)
        alive = await self._store.live_user(claims)
        return SessionUser(user=user, session_alive=alive is not None)

    @provider_call
    async def update_user(
        self,
        claims: AccessClaims,
        *,
        password: str | None = None,
        user_metadata: dict[str, Any] | None = None,
    ) -> UserRecord | None:
        """Change the password and/or merge `user_metadata` (a null value deletes its key). A
        new password ends every other session of the user; the caller's stays.

        Returns:
            The updated user, or None if it was deleted meanwhile.

        Raises:
            WeakPassword: the new password breaks the policy.
            SamePassword: it is the password the user already has.
        """
        password_hash = None
        if password is not None:
            check_password_policy(password)
            current = await self._store.password_hash(claims.user_id)
            if current is not None:
                same = await verify_password(password_hash=current, password=password)
                if same.matches:
                    raise SamePassword()
            password_hash = await hash_password(password)
        return await self._store.update_user(
            claims.user_id,
            user_metadata=user_metadata,
            password_hash=password_hash,
            keep_session_id=claims.session_id,
        )

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
    ) -> UserRecord:
        """GoTrue's admin create: no password means a random one nobody knows.

        Raises:
            WeakPassword: a given password breaks this app's policy.
            UserAlreadyExists: the email is taken.
        """
        return await self._provider.create_user(
            email,
            password or secrets.token_urlsafe(_RANDOM_PASSWORD_BYTES),
            display_name=_display_name(user_metadata),
            user_metadata=user_metadata,
            app_metadata=app_metadata,
            email_confirmed=email_confirm,
        )

    @provider_call
    async def admin_get_user(self, user_id: str) -> UserRecord | None:
        return await self._store.user(user_id)

    @provider_call
    async def admin_list_users(self, *, page: int, per_page: int) -> tuple[list[UserRecord], int]:
        return await self._store.users_page(page=page, per_page=per_page)

    @provider_call
    async def admin_delete_user(self, user_id: str) -> bool:
        return await self._store.delete_user(user_id)
