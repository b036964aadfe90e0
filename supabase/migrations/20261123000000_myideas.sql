-- The app's own tables on a Supabase project (apply with `supabase db push`, or paste into the
-- dashboard's SQL editor). The same shape and policies as the app's Alembic migrations
-- (backend/app/db/migrations), written for a database where `auth.users`, `auth.uid()` and the
-- role `authenticated` already exist. Idempotent: safe to run again.

create table if not exists public.user_profile (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name varchar(100),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists public.items (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  title varchar(200) not null,
  description text not null default '',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists ix_items_user_id_created_at on public.items (user_id, created_at);

alter table public.user_profile enable row level security;
alter table public.items enable row level security;

-- `(select auth.uid())` is evaluated once per statement, not once per row (Supabase's advice).
drop policy if exists user_profile_owner on public.user_profile;
create policy user_profile_owner on public.user_profile for all to authenticated
  using ((select auth.uid()) = id) with check ((select auth.uid()) = id);
drop policy if exists items_owner on public.items;
create policy items_owner on public.items for all to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);

grant select, update on public.user_profile to authenticated;
grant select, insert, update, delete on public.items to authenticated;

-- Every new auth user gets its profile row, whoever created the user (the dashboard, an invite,
-- an OAuth sign-in). The server's own sign-up inserts the same row too; `on conflict do nothing`
-- makes the two agree whichever comes first.
create or replace function public.handle_new_user() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.user_profile (id, display_name)
  values (new.id, new.raw_user_meta_data ->> 'display_name')
  on conflict (id) do nothing;
  return new;
end;
$$;

drop trigger if exists on_auth_user_created on auth.users;
create trigger on_auth_user_created
  after insert on auth.users
  for each row execute function public.handle_new_user();
