"""Service-role operations of the embedded provider, which bypass row-level security.

Nothing here is reachable from a route's input: the routes hold a `UserScopedClient`, and only the
identity provider holds this one. Keeping the privileged path this small is what makes the RLS
policies worth having.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from backend.app.core.errors import UserAlreadyExists
from backend.app.db.engine import Database
from backend.app.db.tables import (
    identity_refresh_tokens,
    identity_sessions,
    identity_users,
    items,
    user_profile,
    utcnow,
)
from backend.app.identity.base import SignOutScope

__all__ = ["EMAIL_PROVIDER_METADATA", "AdminClient", "UserRecord"]

# GoTrue's `app_metadata` of a user who signs in with an email and a password.
EMAIL_PROVIDER_METADATA: dict[str, Any] = {"provider": "email", "providers": ["email"]}


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as the GoTrue-compatible API shows it (no secret in it)."""

    id: str
    email: str
    user_metadata: dict[str, Any]
    app_metadata: dict[str, Any]
    email_confirmed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_sign_in_at: datetime | None


_RECORD_COLUMNS = (
    identity_users.c.id,
    identity_users.c.email_as_typed,
    identity_users.c.user_metadata,
    identity_users.c.app_metadata,
    identity_users.c.email_confirmed_at,
    identity_users.c.created_at,
    identity_users.c.updated_at,
    identity_users.c.last_sign_in_at,
)


def _record(row: Any) -> UserRecord:  # a row of _RECORD_COLUMNS
    return UserRecord(
        id=row.id,
        email=row.email_as_typed,
        user_metadata=dict(row.user_metadata or {}),
        app_metadata=dict(row.app_metadata or {}),
        email_confirmed_at=row.email_confirmed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_sign_in_at=row.last_sign_in_at,
    )


def merge_metadata(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """GoTrue's merge: each key of `changes` replaces its value; a null value deletes the key."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class AdminClient:
    def __init__(self, database: Database):
        self._db = database

    async def create_user(
        self,
        *,
        email: str,
        email_as_typed: str,
        password_hash: str,
        display_name: str | None,
        user_metadata: dict[str, Any] | None = None,
        app_metadata: dict[str, Any] | None = None,
        email_confirmed: bool = True,
    ) -> str:
        """Insert the user and its profile in one transaction; returns the new user id.

        Args:
            email: the normalized address (unique); `email_as_typed` is kept for display.
            user_metadata: GoTrue's `user_metadata`; `app_metadata` is merged over the email
                provider's.
            email_confirmed: this server sends no mail, so users are confirmed at sign-up; only
                an admin may create an unconfirmed one.

        Raises:
            UserAlreadyExists: the email is taken (the unique index decides, not a prior read,
                so two concurrent sign-ups cannot both pass).
        """
        user_id = str(uuid.uuid4())
        now = utcnow()

        def insert(conn: Connection) -> None:
            conn.execute(
                identity_users.insert().values(
                    id=user_id,
                    email=email,
                    email_as_typed=email_as_typed,
                    password_hash=password_hash,
                    user_metadata=user_metadata or {},
                    app_metadata=merge_metadata(EMAIL_PROVIDER_METADATA, app_metadata or {}),
                    email_confirmed_at=now if email_confirmed else None,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                user_profile.insert().values(
                    id=user_id, display_name=display_name, created_at=now, updated_at=now
                )
            )

        try:
            await self._db.write(insert)
        except IntegrityError as exc:
            if "email" in str(exc.orig).lower():
                raise UserAlreadyExists() from exc
            raise
        return user_id

    async def get_user(self, user_id: str) -> UserRecord | None:
        row = await self._db.read(
            lambda conn: conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == user_id)
            ).first()
        )
        return None if row is None else _record(row)

    async def list_users(self, *, page: int, per_page: int) -> tuple[list[UserRecord], int]:
        """One page of users, newest first (GoTrue's order), and the number of all users."""

        def read(conn: Connection) -> tuple[list[UserRecord], int]:
            total = conn.execute(sa.select(sa.func.count()).select_from(identity_users)).scalar()
            rows = conn.execute(
                sa.select(*_RECORD_COLUMNS)
                .order_by(identity_users.c.created_at.desc(), identity_users.c.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            ).all()
            return [_record(row) for row in rows], int(total or 0)

        return await self._db.read(read)

    async def update_user(
        self,
        user_id: str,
        *,
        user_metadata: dict[str, Any] | None = None,
        password_hash: str | None = None,
        keep_session_id: str | None = None,
    ) -> UserRecord | None:
        """Merge `user_metadata` (see `merge_metadata`) and/or set a new password hash, in one
        transaction. A new password ends every session of the user but `keep_session_id`, as
        GoTrue's `UpdatePassword` does: whoever else held a session must prove the new password.

        Returns:
            The updated user, or None when the user no longer exists.
        """

        def update(conn: Connection) -> UserRecord | None:
            current = conn.execute(
                sa.select(identity_users.c.user_metadata)
                .where(identity_users.c.id == user_id)
                .with_for_update()
            ).first()
            if current is None:
                return None
            changes: dict[str, Any] = {"updated_at": utcnow()}
            if user_metadata is not None:
                changes["user_metadata"] = merge_metadata(
                    dict(current.user_metadata or {}), user_metadata
                )
            if password_hash is not None:
                changes["password_hash"] = password_hash
                others = identity_sessions.c.user_id == user_id
                if keep_session_id is not None:
                    others = sa.and_(others, identity_sessions.c.id != keep_session_id)
                revoke_sessions(conn, others)
            conn.execute(
                identity_users.update().where(identity_users.c.id == user_id).values(**changes)
            )
            row = conn.execute(
                sa.select(*_RECORD_COLUMNS).where(identity_users.c.id == user_id)
            ).one()
            return _record(row)

        return await self._db.write(update)

    async def delete_user(self, user_id: str) -> bool:
        """Delete the user for good, with its profile and items, in one transaction; its
        sessions and refresh tokens go with it (foreign keys cascade). False if there was none.

        GoTrue leaves an app's tables to their own foreign keys; `items` has none to the user (it
        must also run on Supabase, where users live in another schema), so the app's rows are
        deleted here rather than left behind without an owner.
        """

        def delete(conn: Connection) -> bool:
            deleted = conn.execute(
                identity_users.delete()
                .where(identity_users.c.id == user_id)
                .returning(identity_users.c.id)
            ).first()
            if deleted is None:
                return False
            conn.execute(items.delete().where(items.c.user_id == user_id))
            conn.execute(user_profile.delete().where(user_profile.c.id == user_id))
            return True

        return await self._db.write(delete)

    async def revoke_sessions(
        self, *, user_id: str, session_id: str, scope: SignOutScope = SignOutScope.LOCAL
    ) -> None:
        """Revoke a session (`local`), the user's other sessions (`others`) or all of them
        (`global`), with every refresh token they have; idempotent."""
        if scope is SignOutScope.LOCAL:
            chosen = identity_sessions.c.id == session_id
        else:
            chosen = identity_sessions.c.user_id == user_id
            if scope is SignOutScope.OTHERS:
                chosen = sa.and_(chosen, identity_sessions.c.id != session_id)
        await self._db.write(lambda conn: revoke_sessions(conn, chosen))


def revoke_session(conn: Connection, *, session_id: str) -> None:
    revoke_sessions(conn, identity_sessions.c.id == session_id)


def revoke_sessions(conn: Connection, chosen: sa.ColumnElement[bool]) -> None:
    now = utcnow()
    sessions = (
        conn.execute(
            identity_sessions.update()
            .where(chosen, identity_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(identity_sessions.c.id)
        )
        .scalars()
        .all()
    )
    if sessions:
        conn.execute(
            identity_refresh_tokens.update()
            .where(
                identity_refresh_tokens.c.session_id.in_(sessions),
                identity_refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
