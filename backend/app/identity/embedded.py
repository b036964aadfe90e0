"""The embedded identity provider: users, sessions and refresh tokens in the app's own database.

It mirrors Supabase Auth's semantics so the app behaves the same with either provider:

- A session starts at sign-in and ends at sign-out, at `SESSION_TTL_SECONDS`, or on token reuse.
- Refresh tokens are opaque and single use. Only their SHA-256 is stored. The first one of a
  session is random; each successor is `HMAC(secret, predecessor)`. That lets a token presented
  again within the reuse interval be answered with the successor already issued (two tabs that
  refresh at once both stay signed in) without storing any token in clear.
- A rotated token presented after the reuse interval means two parties hold the same session: the
  whole session is revoked (`refresh_token_reused`), as GoTrue does.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import (
    InvalidCredentials,
    ProviderUnavailable,
    RefreshTokenInvalid,
    RefreshTokenReused,
    Unauthorized,
)
from backend.app.db.engine import Database, DatabaseUnavailable
from backend.app.db.tables import identity_refresh_tokens, identity_sessions, identity_users, utcnow
from backend.app.identity.admin_client import AdminClient, revoke_session
from backend.app.identity.base import AuthSession, AuthUser, SignOutScope
from backend.app.identity.emails import email_key
from backend.app.identity.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
    verify_unknown_user,
)
from backend.app.identity.tokens import TokenSigner, TokenVerifier

__all__ = ["EmbeddedIdentityProvider"]

P = ParamSpec("P")
R = TypeVar("R")

# How far a reused token may be followed along its successors inside the reuse interval.
_MAX_SUCCESSOR_WALK = 32


def _provider_call(
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


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class EmbeddedIdentityProvider:
    def __init__(
        self,
        *,
        database: Database,
        admin: AdminClient,
        signer: TokenSigner,
        verifier: TokenVerifier,
        secret: bytes,
        session_ttl_seconds: int,
        reuse_interval_seconds: int,
    ):
        self._db = database
        self._admin = admin
        self._signer = signer
        self._verifier = verifier
        self._secret = secret
        self._session_ttl = timedelta(seconds=session_ttl_seconds)
        self._reuse_interval = timedelta(seconds=reuse_interval_seconds)

    @_provider_call
    async def sign_up(self, *, email: str, password: str, display_name: str | None) -> AuthUser:
        check_password_policy(password)
        password_hash = await hash_password(password)
        user_id = await self._admin.create_user(
            email=email_key(email),
            email_as_typed=email,
            password_hash=password_hash,
            display_name=display_name,
        )
        return AuthUser(id=user_id, email=email)

    @_provider_call
    async def sign_in_with_password(self, *, email: str, password: str) -> AuthSession:
        key = email_key(email)
        row = await self._db.read(
            lambda conn: conn.execute(
                sa.select(
                    identity_users.c.id,
                    identity_users.c.email_as_typed,
                    identity_users.c.password_hash,
                ).where(identity_users.c.email == key)
            ).first()
        )
        if row is None:
            await verify_unknown_user(password=password)
            raise InvalidCredentials()
        check = await verify_password(password_hash=row.password_hash, password=password)
        if not check.matches:
            raise InvalidCredentials()
        user = AuthUser(id=row.id, email=row.email_as_typed)
        session_id = str(uuid.uuid4())
        refresh_token = secrets.token_urlsafe(32)
        now = utcnow()
        user_changes: dict[str, Any] = {"last_sign_in_at": now}
        if check.new_hash is not None:
            user_changes |= {"password_hash": check.new_hash, "updated_at": now}

        def start_session(conn: Connection) -> None:
            conn.execute(
                identity_users.update().where(identity_users.c.id == user.id).values(**user_changes)
            )
            conn.execute(
                identity_sessions.insert().values(
                    id=session_id,
                    user_id=user.id,
                    created_at=now,
                    not_after=now + self._session_ttl,
                )
            )
            _store_refresh_token(conn, refresh_token, session_id=session_id, now=now)

        await self._db.write(start_session)
        return self._session(user, session_id, refresh_token)

    @_provider_call
    async def refresh(self, *, refresh_token: str) -> AuthSession:
        # The reuse interval counts from when the token was presented, not from when its turn for
        # the database came: under load, a twin request that arrived with it may wait longer.
        presented_at = utcnow()
        outcome = await self._db.write(lambda conn: self._rotate(conn, refresh_token, presented_at))
        if isinstance(outcome, _Reused):
            raise RefreshTokenReused()
        return self._session(outcome.user, outcome.session_id, outcome.refresh_token)

    def _rotate(
        self, conn: Connection, refresh_token: str, presented_at: datetime
    ) -> _Rotated | _Reused:
        """One transaction: rotate the token, or answer a reuse (see the module docstring)."""
        token_hash = _hash_token(refresh_token)
        now = utcnow()
        # The conditional UPDATE is the arbiter: of any number of concurrent refreshes with one
        # token, across processes, exactly one sees a row come back.
        rotated = conn.execute(
            identity_refresh_tokens.update()
            .where(
                identity_refresh_tokens.c.token_hash == token_hash,
                identity_refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(identity_refresh_tokens.c.session_id)
        ).first()
        if rotated is not None:
            user = _live_session_user(conn, rotated.session_id, now)
            successor = self._successor(refresh_token)
            _store_refresh_token(conn, successor, session_id=rotated.session_id, now=now)
            return _Rotated(user, rotated.session_id, successor)

        spent = conn.execute(
            sa.select(
                identity_refresh_tokens.c.session_id, identity_refresh_tokens.c.revoked_at
            ).where(identity_refresh_tokens.c.token_hash == token_hash)
        ).first()
        if spent is None:
            raise RefreshTokenInvalid()
        user = _live_session_user(conn, spent.session_id, now)
        if presented_at - spent.revoked_at <= self._reuse_interval:
            return _Rotated(user, spent.session_id, self._current_successor(conn, refresh_token))
        # Committed with this transaction; the caller raises refresh_token_reused afterwards.
        revoke_session(conn, session_id=spent.session_id)
        return _Reused()

    @_provider_call
    async def sign_out(
        self, *, refresh_token: str, scope: SignOutScope = SignOutScope.LOCAL
    ) -> None:
        session = await self._db.read(
            lambda conn: conn.execute(
                sa.select(identity_sessions.c.id, identity_sessions.c.user_id)
                .select_from(identity_refresh_tokens.join(identity_sessions))
                .where(identity_refresh_tokens.c.token_hash == _hash_token(refresh_token))
            ).first()
        )
        if session is not None:
            await self._admin.revoke_sessions(
                user_id=session.user_id, session_id=session.id, scope=scope
            )

    @_provider_call
    async def get_user(self, claims: AccessClaims) -> AuthUser:
        now = utcnow()
        row = await self._db.read(
            lambda conn: conn.execute(
                sa.select(identity_users.c.id, identity_users.c.email_as_typed)
                .select_from(identity_sessions.join(identity_users))
                .where(
                    identity_sessions.c.id == claims.session_id,
                    identity_sessions.c.user_id == claims.user_id,
                    identity_sessions.c.revoked_at.is_(None),
                    identity_sessions.c.not_after > now,
                )
            ).first()
        )
        if row is None:
            raise Unauthorized(token_was_sent=True, details={"reason": "session_ended"})
        return AuthUser(id=row.id, email=row.email_as_typed)

    async def close(self) -> None:
        """Nothing to release: the database belongs to the app."""

    async def verify_access_token(self, access_token: str) -> AccessClaims:
        return await self._verifier.verify(access_token)

    def _successor(self, refresh_token: str) -> str:
        digest = hmac.new(self._secret, b"refresh:" + refresh_token.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def _session(self, user: AuthUser, session_id: str, refresh_token: str) -> AuthSession:
        access_token = self._signer.issue(user_id=user.id, email=user.email, session_id=session_id)
        return AuthSession(user=user, access_token=access_token, refresh_token=refresh_token)

    def _current_successor(self, conn: Connection, refresh_token: str) -> str:
        """Follow the successors of a rotated token to the one not yet rotated."""
        token = refresh_token
        for _ in range(_MAX_SUCCESSOR_WALK):
            token = self._successor(token)
            revoked_at = conn.execute(
                sa.select(identity_refresh_tokens.c.revoked_at).where(
                    identity_refresh_tokens.c.token_hash == _hash_token(token)
                )
            ).first()
            if revoked_at is None:
                break
            if revoked_at[0] is None:
                return token
        raise RefreshTokenInvalid()


@dataclass(frozen=True, slots=True)
class _Rotated:
    user: AuthUser
    session_id: str
    refresh_token: str


class _Reused:
    """A rotated token came back after the reuse interval; its session is now revoked."""


def _store_refresh_token(conn: Connection, token: str, *, session_id: str, now: datetime) -> None:
    conn.execute(
        identity_refresh_tokens.insert().values(
            token_hash=_hash_token(token), session_id=session_id, created_at=now
        )
    )


def _live_session_user(conn: Connection, session_id: str, now: datetime) -> AuthUser:
    """The session's user, if the session is neither revoked nor past its lifetime.

    Raises:
        RefreshTokenInvalid: the session is over.
    """
    row = conn.execute(
        sa.select(identity_users.c.id, identity_users.c.email_as_typed)
        .select_from(identity_sessions.join(identity_users))
        .where(
            identity_sessions.c.id == session_id,
            identity_sessions.c.revoked_at.is_(None),
            identity_sessions.c.not_after > now,
        )
    ).first()
    if row is None:
        raise RefreshTokenInvalid()
    return AuthUser(id=row.id, email=row.email_as_typed)
