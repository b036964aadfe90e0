"""`supabase/migrations/` on a PostgreSQL with the parts of Supabase it relies on."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from backend.app.core.settings import PROJECT_ROOT

MIGRATIONS = sorted((PROJECT_ROOT / "supabase" / "migrations").glob("*.sql"))

# What a Supabase database has before the project's own SQL: the auth schema, its users table
# (the columns the trigger reads), auth.uid() and the role `authenticated`.
_SUPABASE_STAND_IN = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
  END IF;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
GRANT authenticated TO CURRENT_USER;
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, raw_user_meta_data jsonb);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
  SELECT nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid
$f$;
GRANT USAGE ON SCHEMA auth TO authenticated;
"""


@pytest.mark.postgres
class TestSupabaseMigrations:
    async def test_applied_twice_a_new_auth_user_gets_one_profile_under_rls(
        self, fresh_postgres_url
    ):
        conn = await asyncpg.connect(fresh_postgres_url)
        try:
            await conn.execute(_SUPABASE_STAND_IN)
            for _ in range(2):  # idempotent
                for path in MIGRATIONS:
                    await conn.execute(path.read_text())
            ada, grace = uuid.uuid4(), uuid.uuid4()
            for user_id, name in ((ada, "Ada"), (grace, "Grace")):
                await conn.execute(
                    "INSERT INTO auth.users "
                    "VALUES ($1, jsonb_build_object('display_name', $2::text))",
                    user_id,
                    name,
                )
            # The server's own insert after the trigger's: no error, no second row.
            await conn.execute(
                "INSERT INTO public.user_profile (id, display_name) VALUES ($1, 'x') "
                "ON CONFLICT (id) DO NOTHING",
                ada,
            )
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('role', 'authenticated', true), "
                    "set_config('request.jwt.claims', $1, true)",
                    f'{{"sub": "{ada}"}}',
                )
                visible = await conn.fetch("SELECT id, display_name FROM public.user_profile")
        finally:
            await conn.close()

        assert MIGRATIONS
        assert [(row["id"], row["display_name"]) for row in visible] == [(ada, "Ada")]
