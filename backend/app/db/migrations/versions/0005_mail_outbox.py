"""The mail outbox: messages stored in the transaction that causes them, sent by a background
sender (backend/app/mail/outbox.py), claimed one at a time so no two instances send one twice.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from backend.app.db.tables import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("body_text", sa.Text),
        sa.Column("body_html", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("not_after", UtcDateTime, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("claim_id", sa.String(36)),
        sa.Column("sent_at", UtcDateTime),
        sa.Column("last_error", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
    )
    op.create_index(
        "ix_mail_outbox_state_next_attempt_at", "mail_outbox", ["state", "next_attempt_at"]
    )
    if op.get_bind().dialect.name == "postgresql":
        # RLS on and no policy, as the identity tables: the bodies carry tokens, and only the
        # table owner (the app's own connection) may read them, never the `authenticated` role.
        op.execute("ALTER TABLE mail_outbox ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_state_next_attempt_at", "mail_outbox")
    op.drop_table("mail_outbox")
