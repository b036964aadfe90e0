"""Service-role operations of the embedded provider, which bypass row-level security.

Nothing here is reachable from a route's input: the routes hold a `UserScopedClient`, and only the
identity provider holds this one. Keeping the privileged path this small is what makes the RLS
policies worth having.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from backend.app.core.errors import UserAlreadyExists
from backend.app.db.engine import Database
from backend.app.db.tables import (
    identity_refresh_tokens,
    identity_sessions,
    identity_users,
    user_profile,
    utcnow,
)
from backend.app.identity.base import SignOutScope

__all__ = ["AdminClient"]


class AdminClient:
    def __init__(self, database: Database):
        self._db = database

    async def create_user(
        self, *, email: str, email_as_typed: str, password_hash: str, display_name: str | None
    ) -> str:
        """Insert the user and its profile in one transaction; returns the new user id.

        Args:
            email: the normalized address (unique); `email_as_typed` is kept for display.

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
