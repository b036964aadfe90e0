"""Email identity by a normalized address: NFKC, then case-folded; the typed one kept for display.

Before this revision `email` held the address lower-cased, so a look-alike in full-width
letters (U+FF41 for `a`, and so on) could register a second account. Now `email` holds the
normalized address (still the unique, looked-up column) and `email_as_typed` what was typed.

Existing rows are normalized here, their old value kept as typed. Where look-alikes already
exist, the oldest account keeps the address; each later one gets `<address>#<user id>`, which no
typed address normalizes to: nothing is deleted, but it can no longer sign in with a password.
The migration logs their ids for an operator to merge or remove.

Revision ID: 0002
Revises: 0001
"""

import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)


def _normalized(email: str) -> str:
    # A copy of identity/emails.py as of this revision: a migration must not change with the app.
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def upgrade() -> None:
    # Added in place (no table rebuild): SQLite rebuilds tables by dropping them, which would
    # cascade to the sessions that reference the users.
    op.add_column(
        "identity_users",
        sa.Column("email_as_typed", sa.String(320), nullable=False, server_default=""),
    )
    users = sa.table(
        "identity_users",
        sa.column("id", sa.Uuid(as_uuid=False)),
        sa.column("email", sa.String),
        sa.column("email_as_typed", sa.String),
        sa.column("created_at", sa.DateTime),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(users.c.id, users.c.email).order_by(users.c.created_at, users.c.id)
    ).all()
    # Move every address out of the way first, so that renaming one never collides with a row
    # that is renamed later in the loop.
    connection.execute(
        users.update().values(email_as_typed=users.c.email, email=sa.cast(users.c.id, sa.String))
    )
    taken: set[str] = set()
    for row in rows:
        email = _normalized(row.email)
        if email in taken:
            logger.warning("account %s looks like an older one; password sign-in off", row.id)
            email = f"{email}#{row.id}"
        taken.add(email)
        connection.execute(users.update().where(users.c.id == row.id).values(email=email))


def downgrade() -> None:
    op.drop_column("identity_users", "email_as_typed")
