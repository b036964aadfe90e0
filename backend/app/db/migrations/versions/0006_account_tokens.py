"""Account tokens (email confirmation, email change, password reset) and the user agent of a
session, for the account lifecycle (docs/account-lifecycle.md).

A token is stored only as its SHA-256: a leaked table does not leak a link that works. A
session's "last active" is not a column: it is its newest refresh token's `created_at`, which the
idle check already reads through the index of migration 0004.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from backend.app.db.tables import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_account_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("new_email", sa.String(320)),
        sa.Column("new_email_as_typed", sa.String(320)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("spent_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_identity_account_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_identity_account_tokens_token_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name="fk_identity_account_tokens_user_id_identity_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_identity_account_tokens_user_id_purpose",
        "identity_account_tokens",
        ["user_id", "purpose"],
    )
    with op.batch_alter_table("identity_sessions") as batch:
        batch.add_column(sa.Column("user_agent", sa.String(512)))
    if op.get_bind().dialect.name == "postgresql":
        # As the other identity tables: RLS on and no policy, so only the app's own role reads.
        op.execute("ALTER TABLE identity_account_tokens ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    with op.batch_alter_table("identity_sessions") as batch:
        batch.drop_column("user_agent")
    op.drop_index("ix_identity_account_tokens_user_id_purpose", "identity_account_tokens")
    op.drop_table("identity_account_tokens")
