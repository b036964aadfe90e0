"""GoTrue's PKCE flow states, for `code_challenge` on the lifecycle's mails and
`POST /auth/v1/token?grant_type=pkce` (GoTrue `internal/models/flow_state.go`).

Self-contained: one new table, nothing else touched. The auth code is stored only as its
SHA-256 (nobody needs it back: the exchange hashes what it is given); the code challenge is
stored as sent, since GoTrue compares the verifier's hash with it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from backend.app.db.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_flow_states",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("authentication_method", sa.String(32), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("code_challenge_method", sa.String(8), nullable=False),
        sa.Column("auth_code_hash", sa.String(64)),
        sa.Column("auth_code_issued_at", UtcDateTime),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_flow_states"),
        sa.UniqueConstraint("auth_code_hash", name="uq_identity_flow_states_auth_code_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name="fk_identity_flow_states_user_id_identity_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_identity_flow_states_user_id_authentication_method",
        "identity_flow_states",
        ["user_id", "authentication_method"],
    )
    if op.get_bind().dialect.name == "postgresql":
        # As the other identity tables: RLS on and no policy, so only the app's own role reads.
        op.execute("ALTER TABLE identity_flow_states ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_index("ix_identity_flow_states_user_id_authentication_method", "identity_flow_states")
    op.drop_table("identity_flow_states")
