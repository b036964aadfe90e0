"""Users put straight into the tables: 10⁶ of them in seconds, where sign-up would take hours.

Every row is what the app's own sign-up writes (`IdentityStore.create_user`): the user with its
normalized email key (`email_key`, the app's function) and the address as typed, GoTrue's
metadata, confirmed; and its `user_profile` row. The values go through SQLAlchemy's type
processors for the database's dialect (UUIDs, UTC datetimes, JSON stored exactly as the app
stores them), then into the driver in bulk: `executemany` in one transaction on SQLite, asyncpg's
`copy_records_to_table` on PostgreSQL. A NOT NULL column this module does not fill (a migration
added one) stops the seed with its name rather than leaving the app a row it would not write.

All users share one password, hashed once with the app's own hasher (`hash_password`): a sign-in
costs exactly one verify with the app's parameters.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from backend.app.db.migrate import upgrade_to_head
from backend.app.db.tables import identity_users, user_profile, utcnow
from backend.app.identity.emails import email_key
from backend.app.identity.embedded import EMAIL_PROVIDER_METADATA
from backend.app.identity.passwords import hash_password

__all__ = ["PASSWORD", "email_of", "password_hash", "seed", "spread"]

PASSWORD = "bench passphrase for every seeded user"
_DISPLAY_NAME = "Bench"


def email_of(index: int) -> str:
    """The address user `index` signed up with, as typed (its key is the lower-cased form)."""
    return f"Bench.User{index:07d}@Example.com"


def spread(count: int, picks: int) -> list[int]:
    """`picks` user indexes spread evenly over `count` users (first, middle and last pages)."""
    picks = min(picks, count)
    return [i * count // picks + (count // picks) // 2 for i in range(picks)]


def password_hash() -> str:
    return asyncio.run(hash_password(PASSWORD))


def _converter(table: sa.Table, dialect: Dialect, columns: list[str]) -> Any:
    unfilled = [
        column.name
        for column in table.c
        if not column.nullable and column.server_default is None and column.name not in columns
    ]
    if unfilled:
        raise RuntimeError(f"bench/seed.py does not fill {table.name}.{', '.join(unfilled)}")
    processors = [table.c[name].type.bind_processor(dialect) for name in columns]

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for process, value in zip(processors, row, strict=True)
        )

    return convert


_USER_COLUMNS = [
    "id",
    "email",
    "email_as_typed",
    "password_hash",
    "user_metadata",
    "app_metadata",
    "email_confirmed_at",
    "created_at",
    "updated_at",
]
_PROFILE_COLUMNS = ["id", "display_name", "created_at", "updated_at"]


def _ids(count: int) -> list[str]:
    """Random version-4 UUIDs, sorted: inserted in key order, the bulk load appends to the
    indexes instead of splitting pages all over them."""
    digits = os.urandom(16 * count).hex()
    return sorted(
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
        for h in (digits[i : i + 32] for i in range(0, 32 * count, 32))
    )


class _Rows:
    """The rows of `count` users and their profiles, in the terms of the dialect's driver.

    Only the id and the addresses differ from one user to the next; everything else is
    converted once."""

    def __init__(self, count: int, hashed: str, dialect: Dialect):
        now = utcnow()
        user = _converter(identity_users, dialect, _USER_COLUMNS)
        profile = _converter(user_profile, dialect, _PROFILE_COLUMNS)
        metadata = {"display_name": _DISPLAY_NAME}
        self._user_tail = user(
            ("", "", "", hashed, metadata, EMAIL_PROVIDER_METADATA, now, now, now)
        )[3:]
        self.profile_tail = profile(("", _DISPLAY_NAME, now, now))[1:]
        convert_id = identity_users.c.id.type.bind_processor(dialect) or str
        self.ids = [convert_id(user_id) for user_id in _ids(count)]

    def users(self) -> Iterator[tuple[Any, ...]]:
        for index, user_id in enumerate(self.ids):
            typed = email_of(index)
            yield (user_id, email_key(typed), typed, *self._user_tail)

    def profiles(self) -> Iterator[tuple[Any, ...]]:
        return ((user_id, *self.profile_tail) for user_id in self.ids)


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


# Columns named in the order the rows give them (the names are this module's constants).
_INSERT_USERS = (
    f"INSERT INTO {identity_users.name} ({', '.join(_USER_COLUMNS)}) "  # noqa: S608
    f"VALUES ({_placeholders(len(_USER_COLUMNS))})"
)
# A profile per user: its id and constant values, copied inside SQLite.
_INSERT_PROFILES = (
    f"INSERT INTO {user_profile.name} ({', '.join(_PROFILE_COLUMNS)}) "  # noqa: S608
    f"SELECT id, {_placeholders(len(_PROFILE_COLUMNS) - 1)} FROM {identity_users.name}"
)


def _seed_sqlite(path: str, rows: _Rows) -> None:
    connection = sqlite3.connect(path)
    # A scratch file filled once: no journal and no fsync while loading (the app's own
    # connections switch it to WAL when they open it).
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-262144")
    try:
        with connection:  # one transaction
            if connection.execute("SELECT count(*) FROM identity_users").fetchone() != (0,):
                raise RuntimeError("seed a new database only")
            connection.executemany(_INSERT_USERS, rows.users())
            connection.execute(_INSERT_PROFILES, rows.profile_tail)
    finally:
        connection.close()


async def _seed_postgres(url: str, rows: _Rows) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.copy_records_to_table(
                identity_users.name, records=rows.users(), columns=_USER_COLUMNS
            )
            await connection.copy_records_to_table(
                user_profile.name, records=rows.profiles(), columns=_PROFILE_COLUMNS
            )
        # Fresh statistics, as a database that grew to this size would have.
        await connection.execute(f"ANALYZE {identity_users.name}, {user_profile.name}")
    finally:
        await connection.close()


def seed(database_url: str, count: int, hashed: str) -> None:
    """Migrate the database to head and add `count` users (`email_of(0…count-1)`)."""
    asyncio.run(upgrade_to_head(database_url))
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        _seed_sqlite(str(url.database), _Rows(count, hashed, sqlite.dialect()))
    else:
        asyncio.run(
            _seed_postgres(database_url, _Rows(count, hashed, postgresql.asyncpg.dialect()))
        )
