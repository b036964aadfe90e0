"""The index of refresh tokens by session, ordered by creation.

Every `/auth/me` and refresh asks whether a session was used within the idle timeout: whether it
has a refresh token created since then. On `(session_id)` alone that scan reads a session's tokens
oldest first, so a long-lived session (refreshed hourly for two weeks: ~340 tokens) costs more at
every request; on `(session_id, created_at)` it is one index probe. The new index also serves every
lookup by session (and the cascade from sessions), so the old one goes.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_identity_refresh_tokens_session_id_created_at",
        "identity_refresh_tokens",
        ["session_id", "created_at"],
    )
    op.drop_index("ix_identity_refresh_tokens_session_id", "identity_refresh_tokens")


def downgrade() -> None:
    op.create_index(
        "ix_identity_refresh_tokens_session_id", "identity_refresh_tokens", ["session_id"]
    )
    op.drop_index("ix_identity_refresh_tokens_session_id_created_at", "identity_refresh_tokens")
