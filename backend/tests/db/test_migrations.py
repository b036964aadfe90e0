"""The schema migrations, on both backends: the email-identity upgrade of existing rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from backend.app.core.settings import Settings
from backend.app.db.engine import Database
from backend.app.db.migrate import MIGRATIONS, upgrade_to_head
from backend.app.db.tables import identity_users
from backend.app.identity.embedded import EmbeddedIdentityProvider
from backend.app.services import start_services

FULL_WIDTH_ADA = "".join(chr(0xFF41 + ord(letter) - ord("a")) for letter in "ada")


async def _upgrade_to(database: Database, revision: str) -> None:
    def upgrade(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    await database.write(upgrade)


class TestEmailIdentityMigration:
    async def test_existing_rows_are_normalized_and_look_alikes_keep_their_data(
        self, empty_database_url
    ):
        """Rows from before 0002: the oldest of two look-alikes keeps the address, the later one
        keeps its row but an address no sign-in can type; both keep what was typed."""
        database = Database(empty_database_url)
        await _upgrade_to(database, "0001")
        now = datetime.now(UTC)
        rows = [
            (str(uuid.uuid4()), "grace@example.com", now - timedelta(days=3)),
            (str(uuid.uuid4()), "ada@example.com", now - timedelta(days=2)),
            (str(uuid.uuid4()), f"{FULL_WIDTH_ADA}@example.com", now - timedelta(days=1)),
        ]
        users = sa.table(
            "identity_users",
            sa.column("id", sa.Uuid(as_uuid=False)),
            *(sa.column(name) for name in ("email", "password_hash")),
            sa.column("created_at", sa.DateTime(timezone=True)),
            sa.column("updated_at", sa.DateTime(timezone=True)),
        )
        await database.write(
            lambda conn: conn.execute(
                users.insert(),
                [
                    {"id": i, "email": e, "password_hash": "x", "created_at": c, "updated_at": c}
                    for i, e, c in rows
                ],
            )
        )

        await upgrade_to_head(empty_database_url)
        migrated = await database.read(
            lambda conn: {
                row.id: (row.email, row.email_as_typed)
                for row in conn.execute(sa.select(identity_users))
            }
        )
        await database.dispose()

        (grace, _, _), (ada, _, _), (look_alike, _, _) = rows
        assert migrated == {
            grace: ("grace@example.com", "grace@example.com"),
            ada: ("ada@example.com", "ada@example.com"),
            look_alike: (f"ada@example.com#{look_alike}", f"{FULL_WIDTH_ADA}@example.com"),
        }


class TestGoTrueUserFieldsMigration:
    async def test_existing_users_become_confirmed_email_users_named_after_their_profile(
        self, empty_database_url
    ):
        """Rows from before 0003 came through /auth/signup: confirmed at creation, the email
        provider's app metadata, and the profile's display name as user metadata."""
        database = Database(empty_database_url)
        await _upgrade_to(database, "0002")
        created = datetime.now(UTC) - timedelta(days=1)
        named, anonymous = str(uuid.uuid4()), str(uuid.uuid4())
        users = sa.table(
            "identity_users",
            sa.column("id", sa.Uuid(as_uuid=False)),
            *(sa.column(name) for name in ("email", "email_as_typed", "password_hash")),
            sa.column("created_at", sa.DateTime(timezone=True)),
            sa.column("updated_at", sa.DateTime(timezone=True)),
        )
        profiles = sa.table(
            "user_profile",
            sa.column("id", sa.Uuid(as_uuid=False)),
            sa.column("display_name"),
            sa.column("created_at", sa.DateTime(timezone=True)),
            sa.column("updated_at", sa.DateTime(timezone=True)),
        )

        def insert(conn: sa.Connection) -> None:
            for user_id, name in ((named, "Ada"), (anonymous, None)):
                email = f"{user_id}@example.com"
                conn.execute(
                    users.insert().values(
                        id=user_id, email=email, email_as_typed=email, password_hash="x",
                        created_at=created, updated_at=created,
                    )
                )  # fmt: skip
                conn.execute(
                    profiles.insert().values(
                        id=user_id, display_name=name, created_at=created, updated_at=created
                    )
                )

        await database.write(insert)

        await upgrade_to_head(empty_database_url)
        migrated = await database.read(
            lambda conn: {
                row.id: (row.user_metadata, row.app_metadata, row.email_confirmed_at)
                for row in conn.execute(sa.select(identity_users))
            }
        )
        await database.dispose()

        email_provider = {"provider": "email", "providers": ["email"]}
        assert migrated[named][:2] == ({"display_name": "Ada"}, email_provider)
        assert migrated[anonymous][:2] == ({}, email_provider)
        assert abs(migrated[named][2] - created) < timedelta(seconds=1)


class TestRefreshTokenUseIndex:
    async def test_the_idle_check_of_every_request_is_one_index_probe(self, tmp_path):
        """Migration 0004: "was this session used since?" (asked by every `/auth/me`) searches
        (session_id, created_at), not every token of the session oldest first."""
        services = await start_services(Settings(_env_file=None, data_dir=tmp_path))
        assert isinstance(services.identity, EmbeddedIdentityProvider)
        statement = services.identity.store._live_user.statement

        def explain(conn: sa.Connection) -> list[str]:
            compiled = statement.compile(dialect=conn.dialect)
            parameters = (None,) * len(compiled.positiontup or ())  # the plan needs no values
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", parameters)
            return [row[-1] for row in rows]

        try:
            plan = await services.database.read(explain)
        finally:
            await services.close()

        probe = "ix_identity_refresh_tokens_session_id_created_at (session_id=? AND created_at>?)"
        assert any(probe in step for step in plan), plan
