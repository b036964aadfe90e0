"""GoTrue's ban: `banned_until` on the user (the admin API's `ban_duration`).

A user whose `banned_until` is in the future may not sign in, refresh, verify a link or use an
access token on a route that asks for the user; a past or null one is no ban (GoTrue's
`IsBanned`). The column is read on the paths that already read the user row, so no index.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from backend.app.db.tables import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_users") as batch:
        batch.add_column(sa.Column("banned_until", UtcDateTime))


def downgrade() -> None:
    with op.batch_alter_table("identity_users") as batch:
        batch.drop_column("banned_until")
