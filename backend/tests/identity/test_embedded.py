"""The embedded provider's session semantics, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import sqlalchemy as sa

from backend.app.core.errors import (
    ProviderUnavailable,
    RefreshTokenInvalid,
    RefreshTokenReused,
    UserAlreadyExists,
)
from backend.app.db.tables import identity_users, user_profile
from backend.tests.helpers import PASSWORD, unique_email


def identity(app):
    return app.state.services.identity


class TestEmbeddedProvider:
    async def test_concurrent_refreshes_across_instances_all_get_the_same_successor(self, make_app):
        """Rotation is atomic across processes: two app instances (two engines, two pools) race
        eight refreshes of one token; exactly one rotation happens and everyone gets its result."""
        first, second = await make_app(), await make_app()
        email = unique_email()
        await identity(first).sign_up(email=email, password=PASSWORD, display_name=None)
        session = await identity(first).sign_in_with_password(email=email, password=PASSWORD)

        results = await asyncio.gather(
            *(
                identity(app).refresh(refresh_token=session.refresh_token)
                for app in (first, second) * 4
            )
        )

        assert len({result.refresh_token for result in results}) == 1
        successor = results[0].refresh_token
        assert successor != session.refresh_token
        next_session = await identity(second).refresh(refresh_token=successor)
        assert next_session.user.email == email

    async def test_reuse_within_interval_follows_the_chain_to_the_current_token(self, app):
        """A tab that slept through two rotations still gets the session's current token."""
        email = unique_email()
        await identity(app).sign_up(email=email, password=PASSWORD, display_name=None)
        start = await identity(app).sign_in_with_password(email=email, password=PASSWORD)
        one = await identity(app).refresh(refresh_token=start.refresh_token)
        two = await identity(app).refresh(refresh_token=one.refresh_token)

        late = await identity(app).refresh(refresh_token=start.refresh_token)

        assert late.refresh_token == two.refresh_token

    @pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
    async def test_reuse_interval_counts_from_when_the_token_was_presented(
        self, make_app, tmp_path
    ):
        """A twin refresh that arrived at once but waited for the database longer than the
        interval (another process held the write lock) still gets the successor."""
        app = await make_app(refresh_reuse_interval_seconds=1)
        email = unique_email()
        await identity(app).sign_up(email=email, password=PASSWORD, display_name=None)
        start = await identity(app).sign_in_with_password(email=email, password=PASSWORD)
        first = await identity(app).refresh(refresh_token=start.refresh_token)
        holder = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            twin = asyncio.create_task(identity(app).refresh(refresh_token=start.refresh_token))
            await asyncio.sleep(1.5)  # longer than the interval, shorter than the db timeout
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        assert (await twin).refresh_token == first.refresh_token

    async def test_reuse_after_interval_revokes_the_session(self, make_app):
        app = await make_app(refresh_reuse_interval_seconds=0)
        email = unique_email()
        await identity(app).sign_up(email=email, password=PASSWORD, display_name=None)
        start = await identity(app).sign_in_with_password(email=email, password=PASSWORD)
        current = await identity(app).refresh(refresh_token=start.refresh_token)
        await asyncio.sleep(0.01)

        with pytest.raises(RefreshTokenReused):
            await identity(app).refresh(refresh_token=start.refresh_token)
        with pytest.raises(RefreshTokenInvalid):
            await identity(app).refresh(refresh_token=current.refresh_token)

    async def test_other_sessions_of_the_user_survive_a_reuse(self, make_app):
        """Reuse revokes one session (one device), not the user's others."""
        app = await make_app(refresh_reuse_interval_seconds=0)
        email = unique_email()
        await identity(app).sign_up(email=email, password=PASSWORD, display_name=None)
        laptop = await identity(app).sign_in_with_password(email=email, password=PASSWORD)
        phone = await identity(app).sign_in_with_password(email=email, password=PASSWORD)
        await identity(app).refresh(refresh_token=laptop.refresh_token)
        await asyncio.sleep(0.01)
        with pytest.raises(RefreshTokenReused):
            await identity(app).refresh(refresh_token=laptop.refresh_token)

        survived = await identity(app).refresh(refresh_token=phone.refresh_token)

        assert survived.user.email == email

    async def test_session_past_its_lifetime_cannot_refresh(self, make_app):
        app = await make_app(session_ttl_seconds=1)
        email = unique_email()
        await identity(app).sign_up(email=email, password=PASSWORD, display_name=None)
        session = await identity(app).sign_in_with_password(email=email, password=PASSWORD)
        await asyncio.sleep(1.1)

        with pytest.raises(RefreshTokenInvalid):
            await identity(app).refresh(refresh_token=session.refresh_token)

    async def test_concurrent_signups_with_one_email_create_one_user(self, app):
        """The unique index decides: one 201, the rest user_already_exists."""
        email = unique_email()

        results = await asyncio.gather(
            *(
                identity(app).sign_up(email=email, password=PASSWORD, display_name=None)
                for _ in range(4)
            ),
            return_exceptions=True,
        )

        assert sum(not isinstance(result, Exception) for result in results) == 1
        assert all(isinstance(r, UserAlreadyExists) for r in results if isinstance(r, Exception))

    async def test_signup_is_atomic_when_the_profile_insert_fails(self, app):
        """No user without a profile: if the profile cannot be written, the user is not either."""
        database = app.state.services.database
        await database.write(lambda conn: user_profile.drop(conn))
        email = unique_email()

        # SQLite reports the missing table as an OperationalError (503), PostgreSQL as a
        # ProgrammingError (500): either way the sign-up fails, and that is all that matters here.
        with pytest.raises((ProviderUnavailable, sa.exc.ProgrammingError)):
            await identity(app).sign_up(email=email, password=PASSWORD, display_name="Ada")

        users = await database.read(
            lambda conn: conn.execute(
                sa.select(sa.func.count()).where(identity_users.c.email == email)
            ).scalar_one()
        )
        assert users == 0
        await database.write(_restore_user_profile_table)


def _restore_user_profile_table(conn: sa.Connection) -> None:
    """Put the table back as the migration made it, for the shared test database."""
    user_profile.create(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE user_profile ENABLE ROW LEVEL SECURITY"))
        conn.execute(
            sa.text(
                "CREATE POLICY user_profile_owner ON user_profile FOR ALL TO authenticated"
                " USING ((select auth.uid()) = id) WITH CHECK ((select auth.uid()) = id)"
            )
        )
        conn.execute(sa.text("GRANT SELECT, UPDATE ON user_profile TO authenticated"))
