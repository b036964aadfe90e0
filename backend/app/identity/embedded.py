"""The embedded identity provider: users, sessions and refresh tokens in the app's own database.

It mirrors Supabase Auth's semantics so the app behaves the same with either provider:

- A session starts at sign-in and ends at sign-out, at `SESSION_TTL_SECONDS`, or on token reuse.
- Refresh tokens are opaque and single use. Only their SHA-256 is stored. The first one of a
  session is random; each successor is `HMAC(secret, predecessor)`. That lets a token presented
  again within the reuse interval be answered with the successor already issued (two tabs that
  refresh at once both stay signed in) without storing any token in clear.
- A rotated token presented after the reuse interval means two parties hold the same session: the
  whole session is revoked (`refresh_token_reused`), as GoTrue does.

Beyond the `IdentityProvider` protocol it has what GoTrue's own HTTP API needs (`api/gotrue/`):
user metadata, a password change that ends the user's other sessions, and the admin operations.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.app.core.claims import AccessClaims
from backend.app.core.errors import (
    EmailNotConfirmed,
    InvalidCredentials,
    NotFound,
    ProviderUnavailable,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SamePassword,
    Unauthorized,
)
from backend.app.db.engine import Database, DatabaseUnavailable, Query
from backend.app.db.tables import identity_refresh_tokens, identity_sessions, identity_users, utcnow
from backend.app.identity.admin_client import (
    EMAIL_PROVIDER_METADATA,
    AdminClient,
    UserRecord,
    revoke_session,
)
from backend.app.identity.base import AuthSession, AuthUser, SignOutScope
from backend.app.identity.emails import email_key
from backend.app.identity.passwords import (
    check_password_policy,
    hash_password,
    verify_password,
    verify_unknown_user,
)
from backend.app.identity.tokens import TokenSigner, TokenVerifier

__all__ = ["EmbeddedIdentityProvider", "SessionUser"]

P = ParamSpec("P")
R = TypeVar("R")

# How far a reused token may be followed along its successors inside the reuse interval.
_MAX_SUCCESSOR_WALK = 32
# A password GoTrue's admin API makes up when none is given: nobody knows it.
_RANDOM_PASSWORD_BYTES = 48
_DISPLAY_NAME_MAX = 100


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


# The statements of each sign-in and refresh, built once.
_USER_BY_EMAIL = Query(
    sa.select(
        identity_users.c.id,
        identity_users.c.email_as_typed,
        identity_users.c.password_hash,
        identity_users.c.email_confirmed_at,
        identity_users.c.user_metadata,
        identity_users.c.app_metadata,
    ).where(identity_users.c.email == sa.bindparam("email"))
)
_ROTATE = (
    identity_refresh_tokens.update()
    .where(
        # Not named after a column: those names are reserved for the SET clause.
        identity_refresh_tokens.c.token_hash == sa.bindparam("presented_hash"),
        identity_refresh_tokens.c.revoked_at.is_(None),
    )
    .values(revoked_at=sa.bindparam("now", type_=identity_refresh_tokens.c.revoked_at.type))
    .returning(identity_refresh_tokens.c.session_id)
)
_STORE_TOKEN = identity_refresh_tokens.insert()
_SPENT = sa.select(
    identity_refresh_tokens.c.session_id, identity_refresh_tokens.c.revoked_at
).where(identity_refresh_tokens.c.token_hash == sa.bindparam("presented_hash"))


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
        idle_timeout_seconds: int | None = None,
    ):
        self._db = database
        self._admin = admin
        self._signer = signer
        self._verifier = verifier
        self._secret = secret
        self._session_ttl = timedelta(seconds=session_ttl_seconds)
        self._reuse_interval = timedelta(seconds=reuse_interval_seconds)
        # None: no idle limit (only the absolute one, `not_after`).
        self._idle_timeout = (
            timedelta(seconds=idle_timeout_seconds) if idle_timeout_seconds is not None else None
        )
        # Asked on every `/auth/me`: built and compiled once.
        idle = self._idle_timeout is not None
        self._session_user_query = Query(
            sa.select(identity_users.c.id, identity_users.c.email_as_typed)
            .select_from(identity_sessions.join(identity_users))
            .where(_live_session(of_user=True, with_idle_timeout=idle))
        )
        self._session_subject = _session_subject(with_idle_timeout=idle)

    @_provider_call
    async def sign_up(self, *, email: str, password: str, display_name: str | None) -> AuthUser:
        # One user store with GoTrue's API: there, the name is user metadata.
        user_id = await self._create_user(
            email,
            password,
            display_name=display_name,
            user_metadata={"display_name": display_name} if display_name else {},
        )
        return AuthUser(id=user_id, email=email)

    @_provider_call
    async def sign_up_and_sign_in(
        self, *, email: str, password: str, user_metadata: dict[str, Any]
    ) -> AuthSession:
        """GoTrue's sign-up with autoconfirm: the user, its profile (named after
        `user_metadata.display_name` when that is a usable name), and a first session.

        Raises:
            WeakPassword, UserAlreadyExists: as `sign_up`.
        """
        user_id = await self._create_user(
            email, password, display_name=_display_name(user_metadata), user_metadata=user_metadata
        )
        subject = _Subject(
            AuthUser(id=user_id, email=email),
            user_metadata=user_metadata,
            app_metadata=EMAIL_PROVIDER_METADATA,
        )
        return await self._open_session(subject, user_changes={})

    async def _create_user(
        self,
        email: str,
        password: str,
        *,
        display_name: str | None,
        user_metadata: dict[str, Any],
    ) -> str:
        """A confirmed user with its profile, after the password policy; its id.

        Raises:
            WeakPassword, UserAlreadyExists: as `sign_up`.
        """
        check_password_policy(password)
        return await self._admin.create_user(
            email=email_key(email),
            email_as_typed=email,
            password_hash=await hash_password(password),
            display_name=display_name,
            user_metadata=user_metadata,
        )

    @_provider_call
    async def sign_in_with_password(self, *, email: str, password: str) -> AuthSession:
        row = await self._db.fetch_one(_USER_BY_EMAIL, {"email": email_key(email)})
        if row is None:
            await verify_unknown_user(password=password)
            raise InvalidCredentials()
        user_id, email_as_typed, password_hash, confirmed_at, user_metadata, app_metadata = row
        check = await verify_password(password_hash=password_hash, password=password)
        if not check.matches:
            raise InvalidCredentials()
        if confirmed_at is None:  # only after the password, as GoTrue
            raise EmailNotConfirmed()
        subject = _Subject(
            AuthUser(id=user_id, email=email_as_typed),
            user_metadata=user_metadata or {},
            app_metadata=app_metadata or {},
        )
        user_changes: dict[str, Any] = {}
        if check.new_hash is not None:
            user_changes |= {"password_hash": check.new_hash, "updated_at": utcnow()}
        return await self._open_session(subject, user_changes=user_changes)

    async def _open_session(
        self, subject: _Subject, *, user_changes: dict[str, Any]
    ) -> AuthSession:
        user = subject.user
        session_id = str(uuid.uuid4())
        refresh_token = secrets.token_urlsafe(32)
        now = utcnow()
        changes = {"last_sign_in_at": now, **user_changes}

        def start_session(conn: Connection) -> None:
            conn.execute(
                identity_users.update().where(identity_users.c.id == user.id).values(**changes)
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
        signed_in = replace(subject, signed_in_at=int(now.timestamp()))
        return self._session(signed_in, session_id, refresh_token)

    @_provider_call
    async def refresh(self, *, refresh_token: str) -> AuthSession:
        # The reuse interval counts from when the token was presented, not from when its turn for
        # the database came: under load, a twin request that arrived with it may wait longer.
        presented_at = utcnow()
        outcome = await self._db.write(lambda conn: self._rotate(conn, refresh_token, presented_at))
        if isinstance(outcome, _Reused):
            raise RefreshTokenReused()
        return self._session(outcome.subject, outcome.session_id, outcome.refresh_token)

    def _rotate(
        self, conn: Connection, refresh_token: str, presented_at: datetime
    ) -> _Rotated | _Reused:
        """One transaction: rotate the token, or answer a reuse (see the module docstring)."""
        token_hash = _hash_token(refresh_token)
        now = utcnow()
        # The conditional UPDATE is the arbiter: of any number of concurrent refreshes with one
        # token, across processes, exactly one sees a row come back.
        rotated = conn.execute(_ROTATE, {"presented_hash": token_hash, "now": now}).first()
        if rotated is not None:
            subject = self._live_session_user(conn, rotated.session_id, now)
            successor = self._successor(refresh_token)
            _store_refresh_token(conn, successor, session_id=rotated.session_id, now=now)
            return _Rotated(subject, rotated.session_id, successor)

        spent = conn.execute(_SPENT, {"presented_hash": token_hash}).first()
        if spent is None:
            raise RefreshTokenInvalid()
        subject = self._live_session_user(conn, spent.session_id, now)
        if presented_at - spent.revoked_at <= self._reuse_interval:
            current = self._current_successor(conn, refresh_token)
            return _Rotated(subject, spent.session_id, current)
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
        row = await self._db.fetch_one(self._session_user_query, self._live_session_values(claims))
        if row is None:
            raise Unauthorized(token_was_sent=True, details={"reason": "session_ended"})
        user_id, email = row
        return AuthUser(id=user_id, email=email)

    def _live_session_values(self, claims: AccessClaims) -> dict[str, Any]:
        """The values of `_live_session` for the claims' session, now."""
        return {"user_id": claims.user_id, **self._session_values(claims.session_id, utcnow())}

    def _session_values(self, session_id: str, now: datetime) -> dict[str, Any]:
        idle_since = now - self._idle_timeout if self._idle_timeout is not None else None
        return {"session_id": session_id, "now": now, "used_since": idle_since}

    def _live_session_user(self, conn: Connection, session_id: str, now: datetime) -> _Subject:
        """The user of a session that is still live (`_live_session`).

        Raises:
            RefreshTokenInvalid: the session is over.
        """
        row = conn.execute(self._session_subject, self._session_values(session_id, now)).first()
        if row is None:
            raise RefreshTokenInvalid()
        return _Subject(
            AuthUser(id=row.id, email=row.email_as_typed),
            user_metadata=row.user_metadata or {},
            app_metadata=row.app_metadata or {},
            signed_in_at=int(row.created_at.timestamp()),
        )

    async def close(self) -> None:
        """Nothing to release: the database belongs to the app."""

    async def verify_access_token(self, access_token: str) -> AccessClaims:
        return await self._verifier.verify(access_token)

    # What GoTrue's HTTP API needs beyond the protocol.

    @_provider_call
    async def session_user(self, claims: AccessClaims) -> SessionUser:
        """The user of verified claims and whether their session lives (GoTrue tells a deleted
        user and an ended session apart: `user_not_found`, `session_not_found`)."""
        user = await self._admin.get_user(claims.user_id)
        if user is None:
            return SessionUser(user=None, session_alive=False)
        values = self._live_session_values(claims)
        alive = await self._db.fetch_one(self._session_user_query, values)
        return SessionUser(user=user, session_alive=alive is not None)

    @_provider_call
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
            current = await self._db.read(
                lambda conn: conn.execute(
                    sa.select(identity_users.c.password_hash).where(
                        identity_users.c.id == claims.user_id
                    )
                ).scalar()
            )
            if current is not None:
                same = await verify_password(password_hash=current, password=password)
                if same.matches:
                    raise SamePassword()
            password_hash = await hash_password(password)
        return await self._admin.update_user(
            claims.user_id,
            user_metadata=user_metadata,
            password_hash=password_hash,
            keep_session_id=claims.session_id,
        )

    @_provider_call
    async def end_sessions(self, claims: AccessClaims, scope: SignOutScope) -> None:
        """Sign out by access token (GoTrue's `/logout`): this session, the others, or all."""
        await self._admin.revoke_sessions(
            user_id=claims.user_id, session_id=claims.session_id, scope=scope
        )

    @_provider_call
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
        if password:
            check_password_policy(password)
        else:
            password = secrets.token_urlsafe(_RANDOM_PASSWORD_BYTES)
        user_id = await self._admin.create_user(
            email=email_key(email),
            email_as_typed=email,
            password_hash=await hash_password(password),
            display_name=_display_name(user_metadata),
            user_metadata=user_metadata,
            app_metadata=app_metadata,
            email_confirmed=email_confirm,
        )
        user = await self._admin.get_user(user_id)
        if user is None:  # deleted by another admin call in between
            raise NotFound("User not found")
        return user

    @_provider_call
    async def admin_get_user(self, user_id: str) -> UserRecord | None:
        return await self._admin.get_user(user_id)

    @_provider_call
    async def admin_list_users(self, *, page: int, per_page: int) -> tuple[list[UserRecord], int]:
        return await self._admin.list_users(page=page, per_page=per_page)

    @_provider_call
    async def admin_delete_user(self, user_id: str) -> bool:
        return await self._admin.delete_user(user_id)

    def _successor(self, refresh_token: str) -> str:
        digest = hmac.new(self._secret, b"refresh:" + refresh_token.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def _session(self, subject: _Subject, session_id: str, refresh_token: str) -> AuthSession:
        user = subject.user
        access_token = self._signer.issue(
            user_id=user.id,
            email=user.email,
            session_id=session_id,
            user_metadata=subject.user_metadata,
            app_metadata=subject.app_metadata,
            signed_in_at=subject.signed_in_at,
        )
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
class SessionUser:
    """What a bearer's claims still name: the user (None once deleted), and whether the session
    is still alive (not signed out, not past its lifetime)."""

    user: UserRecord | None
    session_alive: bool


@dataclass(frozen=True, slots=True)
class _Subject:
    """Whom an access token is issued to, with the claims GoTrue puts in it."""

    user: AuthUser
    user_metadata: dict[str, Any]
    app_metadata: dict[str, Any]
    signed_in_at: int | None = None


@dataclass(frozen=True, slots=True)
class _Rotated:
    subject: _Subject
    session_id: str
    refresh_token: str


class _Reused:
    """A rotated token came back after the reuse interval; its session is now revoked."""


def _store_refresh_token(conn: Connection, token: str, *, session_id: str, now: datetime) -> None:
    conn.execute(
        _STORE_TOKEN,
        {"token_hash": _hash_token(token), "session_id": session_id, "created_at": now},
    )


def _display_name(user_metadata: dict[str, Any]) -> str | None:
    """`user_metadata.display_name` when it fits the profile's column, else no name."""
    name = user_metadata.get("display_name")
    if not isinstance(name, str):
        return None
    name = name.strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if not name or len(name) > _DISPLAY_NAME_MAX or "\x00" in name:
        return None
    return name


def _live_session(*, of_user: bool, with_idle_timeout: bool) -> sa.ColumnElement[bool]:
    """The session `:session_id` if it is not revoked, not past its lifetime at `:now`, with
    `of_user` still `:user_id`'s and, with an idle timeout, refreshed (or started) since
    `:used_since`: its newest refresh token is the time of its last use that the server sees
    (ASVS V7.3.1)."""
    clauses = [
        identity_sessions.c.id == sa.bindparam("session_id"),
        identity_sessions.c.revoked_at.is_(None),
        identity_sessions.c.not_after > sa.bindparam("now"),
    ]
    if of_user:
        clauses.append(identity_sessions.c.user_id == sa.bindparam("user_id"))
    if with_idle_timeout:
        clauses.append(
            sa.exists().where(
                identity_refresh_tokens.c.session_id == identity_sessions.c.id,
                identity_refresh_tokens.c.created_at > sa.bindparam("used_since"),
            )
        )
    return sa.and_(*clauses)


def _session_subject(with_idle_timeout: bool) -> sa.Select[Any]:
    """Whom the live session `:session_id` belongs to (`_live_session`), for a new token."""
    return (
        sa.select(
            identity_users.c.id,
            identity_users.c.email_as_typed,
            identity_users.c.user_metadata,
            identity_users.c.app_metadata,
            identity_sessions.c.created_at,
        )
        .select_from(identity_sessions.join(identity_users))
        .where(_live_session(of_user=False, with_idle_timeout=with_idle_timeout))
    )
