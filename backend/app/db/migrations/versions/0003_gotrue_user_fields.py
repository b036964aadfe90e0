"""GoTrue's user fields: `user_metadata`, `app_metadata` and `email_confirmed_at`.

The GoTrue-compatible API (`GOTRUE_API_ENABLED`) serves users as GoTrue does, with metadata the
clients read and write. Existing users came through `/auth/signup`, which confirms at once (this
server sends no mail), so they are marked confirmed at their creation time, get the email
provider's `app_metadata`, and carry their profile's display name as `user_metadata.display_name`.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from backend.app.db.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_EMAIL_PROVIDER = {"provider": "email", "providers": ["email"]}


def upgrade() -> None:
    # Added in place (no table rebuild): SQLite rebuilds tables by dropping them, which would
    # cascade to the sessions that reference the users.
    for name in ("user_metadata", "app_metadata"):
        op.add_column(
            "identity_users",
            sa.Column(name, sa.JSON, nullable=False, server_default=sa.text("'{}'")),
        )
    op.add_column("identity_users", sa.Column("email_confirmed_at", UtcDateTime))
    users = sa.table(
        "identity_users",
        sa.column("id", sa.Uuid(as_uuid=False)),
        sa.column("created_at", UtcDateTime),
        sa.column("email_confirmed_at", UtcDateTime),
        sa.column("user_metadata", sa.JSON),
        sa.column("app_metadata", sa.JSON),
    )
    profiles = sa.table(
        "user_profile", sa.column("id", sa.Uuid(as_uuid=False)), sa.column("display_name")
    )
    connection = op.get_bind()
    connection.execute(
        users.update().values(email_confirmed_at=users.c.created_at, app_metadata=_EMAIL_PROVIDER)
    )
    named = connection.execute(
        sa.select(profiles.c.id, profiles.c.display_name).where(
            profiles.c.display_name.is_not(None)
        )
    ).all()
    for row in named:
        connection.execute(
            users.update()
            .where(users.c.id == row.id)
            .values(user_metadata={"display_name": row.display_name})
        )


def downgrade() -> None:
    for name in ("email_confirmed_at", "app_metadata", "user_metadata"):
        op.drop_column("identity_users", name)
