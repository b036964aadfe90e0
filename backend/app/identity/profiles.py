"""The `user_profile` row every user has, created beside an identity that lives elsewhere.

With the embedded provider the user and the profile are inserted in one transaction. With
Supabase the user lives in GoTrue, so the row is created after it; `ensure_profile` is idempotent,
so a sign-in or `/auth/me` can create a row that a crash in between left missing. (A Supabase
project can also create it with the `auth.users` trigger of `supabase/migrations/`.)
"""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from backend.app.core.text import unstorable_reason
from backend.app.db.engine import Database
from backend.app.db.tables import user_profile, utcnow

__all__ = ["DISPLAY_NAME_MAX_LENGTH", "clean_display_name", "ensure_profile"]

# The profile column's width.
DISPLAY_NAME_MAX_LENGTH = 100


def clean_display_name(name: object) -> str | None:
    """A display name from outside (user metadata, a provider) when it fits the profile's
    column, stripped; else no name."""
    if not isinstance(name, str):
        return None
    name = name.strip()
    if not name or len(name) > DISPLAY_NAME_MAX_LENGTH or unstorable_reason(name):
        return None
    return name


async def ensure_profile(database: Database, *, user_id: str, display_name: str | None) -> None:
    """Insert the user's profile unless it exists; a concurrent insert of the same row is fine.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    exists = await database.read(
        lambda conn: conn.execute(
            sa.select(user_profile.c.id).where(user_profile.c.id == user_id)
        ).first()
    )
    if exists is not None:
        return

    def insert(conn: Connection) -> None:
        now = utcnow()
        conn.execute(
            user_profile.insert().values(
                id=user_id, display_name=display_name, created_at=now, updated_at=now
            )
        )

    with contextlib.suppress(IntegrityError):  # another request created it first
        await database.write(insert)
