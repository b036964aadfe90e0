"""The tables, as SQLAlchemy Core metadata (the hot paths run Core statements, not ORM sessions).

`identity_*` belong to the embedded identity provider; on Supabase their role is played by the
`auth` schema. `user_profile` and `items` are the app's own data, protected by row-level security
on PostgreSQL (see the initial migration).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "identity_account_tokens",
    "identity_flow_states",
    "identity_refresh_tokens",
    "identity_sessions",
    "identity_users",
    "items",
    "mail_outbox",
    "metadata",
    "user_profile",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

identity_users = sa.Table(
    "identity_users",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    # The normalized address (identity/emails.py): unique, and what sign-in looks up.
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    # The address as the user typed it at sign-up, for display.
    sa.Column("email_as_typed", sa.String(320), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("last_sign_in_at", UtcDateTime),
    # GoTrue's user fields (migration 0003): `raw_user_meta_data`, `raw_app_meta_data` and
    # `email_confirmed_at` there. The embedded provider sends no mail, so it confirms at sign-up;
    # only an admin-created user without `email_confirm` is unconfirmed.
    sa.Column("user_metadata", sa.JSON, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("app_metadata", sa.JSON, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("email_confirmed_at", UtcDateTime),
    # GoTrue's `banned_until` (migration 0008): banned while it is in the future.
    sa.Column("banned_until", UtcDateTime),
    # GoTrue's `invited_at` and `deleted_at` (migration 0009): `/invite`, and a soft delete.
    sa.Column("invited_at", UtcDateTime),
    sa.Column("deleted_at", UtcDateTime),
)

identity_sessions = sa.Table(
    "identity_sessions",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column(
        "user_id",
        sa.Uuid(as_uuid=False),
        sa.ForeignKey("identity_users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("not_after", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    # As the browser sent it at sign-in (migration 0006), so a user can tell devices apart.
    sa.Column("user_agent", sa.String(512)),
)

# Only a SHA-256 of each refresh token is stored: a leaked table does not leak sessions.
identity_refresh_tokens = sa.Table(
    "identity_refresh_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "session_id",
        sa.Uuid(as_uuid=False),
        sa.ForeignKey("identity_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # "Used since?" is one probe (migration 0004); it serves every lookup by session too.
    sa.Index("ix_identity_refresh_tokens_session_id_created_at", "session_id", "created_at"),
)

# The links of the account lifecycle (migration 0006): `purpose` is `signup`, `email_change` or
# `reset`, never interchangeable. Only a SHA-256 of each token is stored; a token is spent once
# (`spent_at`), and a newer one of a purpose spends the older ones of that user.
identity_account_tokens = sa.Table(
    "identity_account_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column(
        "user_id",
        sa.Uuid(as_uuid=False),
        sa.ForeignKey("identity_users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # An email change's new address: normalized (what uniqueness is checked on) and as typed.
    sa.Column("new_email", sa.String(320)),
    sa.Column("new_email_as_typed", sa.String(320)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("spent_at", UtcDateTime),
    sa.Index("ix_identity_account_tokens_user_id_purpose", "user_id", "purpose"),
)

# GoTrue's PKCE flow states (migration 0007, GoTrue `models/flow_state.go`): one per mail asked
# for with a `code_challenge`, bound to its user and the kind of link (`authentication_method`,
# GoTrue's names: `email/signup`, `recovery`, `magiclink`, `email_change`). Following the link
# issues the auth code, stored only as its SHA-256; exchanging it deletes the row (single use).
identity_flow_states = sa.Table(
    "identity_flow_states",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column(
        "user_id",
        sa.Uuid(as_uuid=False),
        sa.ForeignKey("identity_users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("authentication_method", sa.String(32), nullable=False),
    sa.Column("code_challenge", sa.String(128), nullable=False),
    sa.Column("code_challenge_method", sa.String(8), nullable=False),
    sa.Column("auth_code_hash", sa.String(64), unique=True),
    sa.Column("auth_code_issued_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index(
        "ix_identity_flow_states_user_id_authentication_method",
        "user_id",
        "authentication_method",
    ),
)

user_profile = sa.Table(
    "user_profile",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column("display_name", sa.String(100)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=False), primary_key=True),
    sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_items_user_id_created_at", "user_id", "created_at"),
)

# Mail waiting to go out (backend/app/mail/outbox.py), written in the transaction that causes it.
# `next_attempt_at` doubles as the claim's lease: a sender that claims a row moves it into the
# future, so a sender that dies mid-send gives the row back when the lease runs out. The bodies
# (which hold the links and their tokens) are set NULL once the message is sent or expired.
mail_outbox = sa.Table(
    "mail_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(998), nullable=False),
    sa.Column("body_text", sa.Text),
    sa.Column("body_html", sa.Text),
    # pending (waiting or claimed), sent, expired
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("not_after", UtcDateTime, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claim_id", sa.String(36)),  # the claim that may finish this attempt
    sa.Column("sent_at", UtcDateTime),
    sa.Column("last_error", sa.String(100)),  # an exception class name, never its message
    sa.Index("ix_mail_outbox_state_next_attempt_at", "state", "next_attempt_at"),
)
