"""GoTrue's `deleted_at` (the admin API's soft delete) and `invited_at` (`/invite`) on the user.

A soft-deleted user keeps its row (and its id, which the app's own rows may name) with its
address obfuscated, its metadata emptied and its sessions ended: it can no longer sign in, and
its address is free for a new sign-up (GoTrue's `SoftDeleteUser`).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from backend.app.db.tables import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_users") as batch:
        batch.add_column(sa.Column("invited_at", UtcDateTime))
        batch.add_column(sa.Column("deleted_at", UtcDateTime))


def downgrade() -> None:
    with op.batch_alter_table("identity_users") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("invited_at")
