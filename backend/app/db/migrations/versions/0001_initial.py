"""Initial schema: embedded identity, user profiles and items, with RLS on PostgreSQL.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from backend.app.db.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# On a Supabase database the role `authenticated` and `auth.uid()` already exist and are kept; on
# a plain PostgreSQL they are created with Supabase's meaning, so the policies read the same.
_POSTGRES_AUTH_SETUP = [
    """
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
      END IF;
      IF NOT pg_has_role(current_user, 'authenticated', 'MEMBER') THEN
        EXECUTE format('GRANT authenticated TO %I', current_user);
      END IF;
    END $$
    """,
    "CREATE SCHEMA IF NOT EXISTS auth",
    """
    DO $$ BEGIN
      IF NOT EXISTS (
        SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'auth' AND p.proname = 'uid'
      ) THEN
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
          SELECT nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid
        $f$;
      END IF;
    END $$
    """,
    "GRANT USAGE ON SCHEMA auth TO authenticated",
]

_POSTGRES_POLICIES = [
    # Identity tables: RLS on and no policy, so only the table owner (the admin path) reaches them.
    "ALTER TABLE identity_users ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE identity_sessions ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE identity_refresh_tokens ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE user_profile ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE items ENABLE ROW LEVEL SECURITY",
    # `(select auth.uid())` is evaluated once per statement, not once per row (Supabase's advice).
    """CREATE POLICY user_profile_owner ON user_profile FOR ALL TO authenticated
       USING ((select auth.uid()) = id) WITH CHECK ((select auth.uid()) = id)""",
    """CREATE POLICY items_owner ON items FOR ALL TO authenticated
       USING ((select auth.uid()) = user_id) WITH CHECK ((select auth.uid()) = user_id)""",
    "GRANT SELECT, UPDATE ON user_profile TO authenticated",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON items TO authenticated",
]


def upgrade() -> None:
    uuid = sa.Uuid(as_uuid=False)
    op.create_table(
        "identity_users",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("last_sign_in_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_identity_users"),
        sa.UniqueConstraint("email", name="uq_identity_users_email"),
    )
    op.create_table(
        "identity_sessions",
        sa.Column("id", uuid, nullable=False),
        sa.Column("user_id", uuid, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("not_after", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_identity_sessions"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            name="fk_identity_sessions_user_id_identity_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_identity_sessions_user_id", "identity_sessions", ["user_id"])
    op.create_table(
        "identity_refresh_tokens",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("session_id", uuid, nullable=False),
        sa.Column("revoked_at", UtcDateTime),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_identity_refresh_tokens_token_hash"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["identity_sessions.id"],
            name="fk_identity_refresh_tokens_session_id_identity_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_identity_refresh_tokens_session_id", "identity_refresh_tokens", ["session_id"]
    )
    op.create_table(
        "user_profile",
        sa.Column("id", uuid, nullable=False),
        sa.Column("display_name", sa.String(100)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_profile"),
    )
    op.create_table(
        "items",
        sa.Column("id", uuid, nullable=False),
        sa.Column("user_id", uuid, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
    )
    op.create_index("ix_items_user_id_created_at", "items", ["user_id", "created_at"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES_AUTH_SETUP + _POSTGRES_POLICIES:
            op.execute(statement)


def downgrade() -> None:
    for table in (
        "items",
        "user_profile",
        "identity_refresh_tokens",
        "identity_sessions",
        "identity_users",
    ):
        op.drop_table(table)
