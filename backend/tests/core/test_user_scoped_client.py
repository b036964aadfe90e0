"""The user-scoped client: on PostgreSQL, row-level security holds even without our filters."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.app.core.claims import AccessClaims
from backend.app.core.user_scoped_client import UserScopedClient
from backend.tests.helpers import PASSWORD, unique_email


async def scoped_client(app) -> UserScopedClient:
    services = app.state.services
    email = unique_email()
    await services.identity.sign_up(email=email, password=PASSWORD, display_name=email[:10])
    session = await services.identity.sign_in_with_password(email=email, password=PASSWORD)
    claims: AccessClaims = await services.identity.verify_access_token(session.access_token.token)
    return UserScopedClient(services.database, claims)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
class TestRowLevelSecurity:
    async def test_unfiltered_select_sees_only_own_rows(self, app):
        """A query that forgets `WHERE user_id = …` still cannot read another user's items."""
        alice, bob = await scoped_client(app), await scoped_client(app)
        await alice.create_item(title="alice's", description="")
        await bob.create_item(title="bob's", description="")

        titles = await alice.run(
            lambda conn: conn.execute(sa.text("SELECT title FROM items")).scalars().all()
        )
        profiles = await alice.run(
            lambda conn: conn.execute(sa.text("SELECT count(*) FROM user_profile")).scalar()
        )

        assert titles == ["alice's"]
        assert profiles == 1

    async def test_insert_for_another_user_is_refused_by_policy(self, app):
        alice, bob = await scoped_client(app), await scoped_client(app)

        forged = sa.text(
            "INSERT INTO items (id, user_id, title, created_at, updated_at) "
            "VALUES (gen_random_uuid(), :owner, 'forged', now(), now())"
        )

        with pytest.raises(sa.exc.DBAPIError, match="row-level security"):
            await alice.run(lambda conn: conn.execute(forged, {"owner": bob.user_id}), write=True)

    async def test_identity_tables_are_closed_to_the_authenticated_role(self, app):
        alice = await scoped_client(app)

        with pytest.raises(sa.exc.DBAPIError, match="permission denied"):
            await alice.run(
                lambda conn: conn.execute(sa.text("SELECT password_hash FROM identity_users"))
            )
