"""Data access bound to one verified user: the only way routes reach the app's data.

Every statement runs inside a transaction that, on PostgreSQL, first switches to the role
`authenticated` and publishes the verified JWT claims as `request.jwt.claims`, exactly as Supabase's
PostgREST does, so the row-level-security policies (`auth.uid() = user_id`) decide what is visible.
Every query also filters by `user_id` explicitly: that is the whole protection on SQLite, and on
PostgreSQL it lets the planner use the index instead of discovering ownership row by row.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backend.app.core.claims import AccessClaims
from backend.app.db.engine import Database, Query, Work
from backend.app.db.tables import items, user_profile, utcnow

__all__ = ["UserScopedClient"]

T = TypeVar("T")

# Run first in each transaction on PostgreSQL: the role and the claims, for that transaction only.
_AS_AUTHENTICATED = Query(
    sa.select(
        sa.func.set_config("role", "authenticated", True),
        sa.func.set_config("request.jwt.claims", sa.bindparam("claims", type_=sa.String), True),
    )
)
# Read on every `/auth/me`: built and compiled once.
_PROFILE = Query(
    sa.select(user_profile.c.display_name).where(user_profile.c.id == sa.bindparam("user_id"))
)
_ITEM_COLUMNS = (
    items.c.id,
    items.c.title,
    items.c.description,
    items.c.created_at,
    items.c.updated_at,
)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class UserScopedClient:
    """Reads and writes as `claims.user_id` and nobody else."""

    def __init__(self, database: Database, claims: AccessClaims):
        self._db = database
        self.user_id = claims.user_id
        self.claims = claims

    async def run(self, work: Work[T], *, write: bool = False) -> T:
        """Run `work` as this user: under RLS on PostgreSQL. Its queries must still filter."""

        def as_user(conn: Connection) -> T:
            if not self._db.is_sqlite:
                conn.execute(_AS_AUTHENTICATED.statement, {"claims": json.dumps(self.claims.raw)})
            return work(conn)

        return await (self._db.write(as_user) if write else self._db.read(as_user))

    async def fetch_one(self, query: Query, values: dict[str, Any]) -> tuple[Any, ...] | None:
        """`Database.fetch_one` as this user; `values` must bind `:user_id` to `self.user_id`."""
        if values.get("user_id") != self.user_id:
            raise ValueError("a user-scoped query binds :user_id to its own user")
        if self._db.is_sqlite:
            return await self._db.fetch_one(query, values)
        setup = (_AS_AUTHENTICATED, {"claims": json.dumps(self.claims.raw)})
        return await self._db.fetch_one(query, values, setup=[setup])

    async def get_profile(self) -> dict[str, Any] | None:
        row = await self.fetch_one(_PROFILE, {"user_id": self.user_id})
        return None if row is None else {"display_name": row[0]}

    async def list_items(self) -> list[dict[str, Any]]:
        return await self.run(
            lambda conn: [
                row._asdict()
                for row in conn.execute(
                    sa.select(*_ITEM_COLUMNS)
                    .where(items.c.user_id == self.user_id)
                    .order_by(items.c.created_at.desc(), items.c.id)
                )
            ]
        )

    async def create_item(self, *, title: str, description: str) -> dict[str, Any]:
        now = utcnow()
        item = {
            "id": str(uuid.uuid4()),
            "title": title,
            "description": description,
            "created_at": now,
            "updated_at": now,
        }
        await self.run(
            lambda conn: conn.execute(items.insert().values(user_id=self.user_id, **item)),
            write=True,
        )
        return item

    async def get_item(self, item_id: str) -> dict[str, Any] | None:
        if not _is_uuid(item_id):
            return None
        row = await self.run(
            lambda conn: conn.execute(
                sa.select(*_ITEM_COLUMNS).where(
                    items.c.id == item_id, items.c.user_id == self.user_id
                )
            ).first()
        )
        return None if row is None else row._asdict()

    async def update_item(self, item_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        if not _is_uuid(item_id):
            return None
        row = await self.run(
            lambda conn: conn.execute(
                items.update()
                .where(items.c.id == item_id, items.c.user_id == self.user_id)
                .values(**changes, updated_at=utcnow())
                .returning(*_ITEM_COLUMNS)
            ).first(),
            write=True,
        )
        return None if row is None else row._asdict()

    async def delete_item(self, item_id: str) -> bool:
        if not _is_uuid(item_id):
            return False
        deleted = await self.run(
            lambda conn: conn.execute(
                items.delete()
                .where(items.c.id == item_id, items.c.user_id == self.user_id)
                .returning(items.c.id)
            ).first(),
            write=True,
        )
        return deleted is not None
