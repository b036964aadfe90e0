"""Checks of what answers: the database and its migrations, Redis, Supabase Auth, SMTP.

Each is async and gives up after `timeout_seconds`; `diagnose` runs them concurrently.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from redis.asyncio import Redis

from backend.app.core.settings import AuthProvider, Settings
from backend.app.db.engine import Database
from backend.app.db.migrate import MIGRATIONS
from backend.app.doctor.browser import split_url
from backend.app.doctor.checks import Check, Status
from backend.app.mail.backends import SmtpBackend

__all__ = ["TIMEOUT_SECONDS", "check_database", "check_redis", "check_smtp", "check_supabase"]

TIMEOUT_SECONDS = 2.5


def _reason(exc: BaseException) -> str:
    """The exception's type and first line, for a message (never a URL with a password: the
    drivers do not put one in their messages, and connection strings are not echoed)."""
    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text[:160]}" if text else type(cause).__name__


def _current_revisions(connection: sa.Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def _sqlite_not_created(url: sa.URL) -> Check | None:
    """A SQLite file that does not exist yet: say so, rather than create it by looking."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    if path.exists():
        return None
    parent = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not os.access(parent, os.W_OK):
        return Check(
            "database",
            Status.FAIL,
            f"{path} does not exist and {parent} is not writable: it cannot be created",
            "Point DATABASE_URL (or DATA_DIR) at a writable folder.",
        )
    return Check(
        "database",
        Status.WARN,
        f"{path} does not exist yet: start-up (or `myideas migrate`) creates it",
        "myideas migrate",
    )


async def check_database(
    database_url: str, *, timeout_seconds: float = TIMEOUT_SECONDS, migrations: Path = MIGRATIONS
) -> list[Check]:
    """The database answers within `timeout_seconds`, and its schema is at the migrations' head."""
    try:
        url = sa.engine.make_url(database_url)
    except sa.exc.ArgumentError:
        return [
            Check(
                "database",
                Status.FAIL,
                "DATABASE_URL is not a database URL",
                "sqlite:///path/to/file.db or postgresql://user:password@host:5432/name",
            )
        ]
    shown = url.render_as_string(hide_password=True)
    if (not_created := _sqlite_not_created(url)) is not None:
        return [not_created]
    started = time.monotonic()
    try:
        database = Database(database_url, timeout_seconds=timeout_seconds)
    except Exception as exc:
        return [Check("database", Status.FAIL, f"{shown}: {_reason(exc)}", "Fix DATABASE_URL.")]
    try:
        async with asyncio.timeout(timeout_seconds + 0.5):
            current = await database.read(_current_revisions)
    except Exception as exc:
        return [
            Check(
                "database",
                Status.FAIL,
                f"cannot reach {shown} within {timeout_seconds:g} s ({_reason(exc)}): every route "
                "answers 503",
                "Start the database, or fix DATABASE_URL's host, port, user and password"
                + (f" (pg_isready -h {url.host} -p {url.port or 5432})." if url.host else "."),
            )
        ]
    finally:
        await database.dispose()
    elapsed_ms = (time.monotonic() - started) * 1000
    checks = [Check("database", Status.OK, f"{shown} answers ({elapsed_ms:.0f} ms)")]
    script = ScriptDirectory(str(migrations))
    heads = set(script.get_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    if set(current) == heads:
        checks.append(Check("migrations", Status.OK, f"at head ({', '.join(sorted(heads))})"))
    elif not current:
        checks.append(
            Check(
                "migrations",
                Status.WARN,
                "the schema is not created yet: the embedded provider's start-up creates it",
                "myideas migrate",
            )
        )
    elif not set(current) <= known:
        checks.append(
            Check(
                "migrations",
                Status.FAIL,
                f"the database is at revision {', '.join(current)}, which this code does not "
                "know: a newer version migrated it",
                "Run the newer version, or restore a backup taken before it migrated.",
            )
        )
    else:
        checks.append(
            Check(
                "migrations",
                Status.WARN,
                f"at {', '.join(current)}, head is {', '.join(sorted(heads))}: start-up upgrades "
                "it",
                "myideas migrate",
            )
        )
    return checks


async def check_redis(
    redis_url: str | None, *, timeout_seconds: float = TIMEOUT_SECONDS
) -> list[Check]:
    """With `REDIS_URL`, Redis answers a PING within `timeout_seconds`."""
    if not redis_url:
        return [
            Check(
                "redis",
                Status.OK,
                "REDIS_URL not set: rate limits are counted in each process (fine for one)",
            )
        ]
    parts = urlsplit(redis_url)
    shown = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
    try:
        client = Redis.from_url(
            redis_url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
        )
    except ValueError as exc:
        return [
            Check(
                "redis", Status.FAIL, f"REDIS_URL is not a Redis URL ({exc})", "redis://host:6379/0"
            )
        ]
    try:
        async with asyncio.timeout(timeout_seconds + 0.5):
            await client.ping()
    except Exception as exc:
        return [
            Check(
                "redis",
                Status.FAIL,
                f"Redis at {shown} does not answer within {timeout_seconds:g} s "
                f"({_reason(exc)}): sign-in keeps working, limited per process, and /health "
                "says degraded",
                f"Start Redis (redis-cli -h {parts.hostname} -p {parts.port or 6379} ping), or "
                "unset REDIS_URL when one instance runs.",
            )
        ]
    finally:
        await client.aclose()
    return [Check("redis", Status.OK, f"{shown} answers")]


async def check_supabase(
    settings: Settings, *, timeout_seconds: float = TIMEOUT_SECONDS
) -> list[Check]:
    """With `AUTH_PROVIDER=supabase`: its URL answers, its JWKS verifies tokens, each key works.

    One call per thing: `/auth/v1/health` with the anon key, the JWKS, and an admin call
    (`/auth/v1/admin/users?per_page=1`) that only the service-role key may make.
    """
    if settings.auth_provider is not AuthProvider.SUPABASE:
        return []
    base = (settings.supabase_url or "").rstrip("/")
    parts = split_url(base) if base else None
    if parts is None:
        return [
            Check(
                "supabase url",
                Status.FAIL,
                "AUTH_PROVIDER=supabase needs SUPABASE_URL, an http(s) URL"
                + (f"; got {base!r}" if base else ""),
                "Set SUPABASE_URL to the project URL, https://<project-ref>.supabase.co",
            )
        ]
    anon = settings.supabase_anon_key.get_secret_value() if settings.supabase_anon_key else None
    service = (
        settings.supabase_service_role_key.get_secret_value()
        if settings.supabase_service_role_key
        else None
    )
    anon_headers = {"apikey": anon} if anon else {}
    async with httpx.AsyncClient(base_url=base, timeout=timeout_seconds) as client:

        async def get(path: str, headers: dict[str, str]) -> httpx.Response | httpx.HTTPError:
            try:
                return await client.get(path, headers=headers)
            except httpx.HTTPError as exc:
                return exc

        async def admin_call() -> httpx.Response | httpx.HTTPError | None:
            if service is None:
                return None
            headers = {"apikey": service, "Authorization": f"Bearer {service}"}
            return await get("/auth/v1/admin/users?per_page=1", headers)

        health, jwks, admin = await asyncio.gather(
            get("/auth/v1/health", anon_headers),
            get("/auth/v1/.well-known/jwks.json", anon_headers),
            admin_call(),
        )
    if isinstance(health, httpx.HTTPError):
        return [
            Check(
                "supabase url",
                Status.FAIL,
                f"{base} does not answer within {timeout_seconds:g} s ({_reason(health)})",
                "Check SUPABASE_URL and the network (curl -sS SUPABASE_URL/auth/v1/health).",
            )
        ]
    checks: list[Check] = []
    keys_refused = health.status_code in (401, 403)
    if health.status_code == 404:
        checks.append(
            Check(
                "supabase url",
                Status.FAIL,
                f"{base}/auth/v1/health is 404: no Supabase Auth there",
                "SUPABASE_URL is the project URL (https://<ref>.supabase.co), without /auth/v1.",
            )
        )
    elif health.status_code >= 500:
        checks.append(
            Check(
                "supabase url",
                Status.FAIL,
                f"{base}/auth/v1/health answers {health.status_code}: Supabase Auth is down",
                "Check the project's status in the Supabase dashboard.",
            )
        )
    else:
        checks.append(Check("supabase url", Status.OK, f"{base} answers"))
    checks += _anon_key_check(anon, health, keys_refused)
    checks += _jwks_check(jwks, settings)
    checks += _service_key_check(service, admin)
    checks += _jwt_secret_check(anon, settings)
    return checks


def _anon_key_check(anon: str | None, health: httpx.Response, refused: bool) -> list[Check]:
    if anon is None:
        return [
            Check(
                "supabase anon key",
                Status.FAIL,
                "SUPABASE_ANON_KEY is not set: the provider cannot call Supabase Auth",
                "Copy the anon (publishable) key from Project Settings > API.",
            )
        ]
    if refused:
        return [
            Check(
                "supabase anon key",
                Status.FAIL,
                f"Supabase refuses SUPABASE_ANON_KEY ({health.status_code}): another project's "
                "key, or revoked",
                "Copy the anon (publishable) key of this project from Project Settings > API.",
            )
        ]
    if health.is_success:
        return [Check("supabase anon key", Status.OK, "accepted (GET /auth/v1/health)")]
    return [
        Check(
            "supabase anon key",
            Status.WARN,
            f"not checked: GET /auth/v1/health answered {health.status_code}",
        )
    ]


def _jwks_check(jwks: httpx.Response | httpx.HTTPError, settings: Settings) -> list[Check]:
    if isinstance(jwks, httpx.HTTPError):
        return [Check("supabase jwks", Status.FAIL, f"no answer ({_reason(jwks)})", "")]
    try:
        keys = jwks.json()["keys"] if jwks.is_success else None
    except (ValueError, KeyError, TypeError):
        keys = None
    if not isinstance(keys, list):
        return [
            Check(
                "supabase jwks",
                Status.FAIL,
                f"/auth/v1/.well-known/jwks.json answers {jwks.status_code} without a key set: "
                "access tokens cannot be verified",
                "Check SUPABASE_URL.",
            )
        ]
    if keys:
        algorithms = sorted({str(key.get("alg", "?")) for key in keys if isinstance(key, dict)})
        return [Check("supabase jwks", Status.OK, f"{len(keys)} key(s) ({', '.join(algorithms)})")]
    if settings.supabase_jwt_secret is not None:
        return [
            Check(
                "supabase jwks",
                Status.OK,
                "no asymmetric keys: tokens are HS256, verified with SUPABASE_JWT_SECRET",
            )
        ]
    return [
        Check(
            "supabase jwks",
            Status.FAIL,
            "the JWKS is empty and SUPABASE_JWT_SECRET is not set: no access token can be verified",
            "Set SUPABASE_JWT_SECRET (Project Settings > API > JWT secret), or switch the project "
            "to asymmetric signing keys.",
        )
    ]


def _service_key_check(
    service: str | None, admin: httpx.Response | httpx.HTTPError | None
) -> list[Check]:
    if service is None or admin is None:
        return [
            Check(
                "supabase service key",
                Status.FAIL,
                "SUPABASE_SERVICE_ROLE_KEY is not set: sign-up and sign-out need the admin API",
                "Copy the service_role (secret) key from Project Settings > API; keep it on the "
                "server only.",
            )
        ]
    if isinstance(admin, httpx.HTTPError):
        return [Check("supabase service key", Status.FAIL, f"no answer ({_reason(admin)})", "")]
    if admin.is_success:
        return [Check("supabase service key", Status.OK, "accepted (GET /auth/v1/admin/users)")]
    return [
        Check(
            "supabase service key",
            Status.FAIL,
            f"the admin API refuses SUPABASE_SERVICE_ROLE_KEY ({admin.status_code}): is it the "
            "anon key, or another project's?",
            "Copy the service_role (secret) key of this project from Project Settings > API.",
        )
    ]


def _jwt_secret_check(anon: str | None, settings: Settings) -> list[Check]:
    """A legacy anon key is an HS256 JWT signed with the project's JWT secret: verify it."""
    if settings.supabase_jwt_secret is None or anon is None or anon.count(".") != 2:
        return []
    try:
        jwt.decode(
            anon,
            settings.supabase_jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            options={"verify_aud": False, "verify_exp": False},
        )
    except jwt.InvalidTokenError:
        return [
            Check(
                "supabase jwt secret",
                Status.FAIL,
                "SUPABASE_JWT_SECRET does not verify the anon key: it is another project's "
                "secret, so HS256 access tokens will be refused",
                "Copy the JWT secret of this project from Project Settings > API.",
            )
        ]
    return [Check("supabase jwt secret", Status.OK, "verifies the anon key")]


async def check_smtp(
    settings: Settings, *, timeout_seconds: float = TIMEOUT_SECONDS
) -> list[Check]:
    """With `SMTP_HOST`: the server answers, upgrades to TLS as `SMTP_TLS` says (its
    certificate verified), and accepts the login; nothing is sent."""
    if not settings.smtp_host:
        return []
    shown = f"{settings.smtp_host}:{settings.smtp_port_or_default} ({settings.smtp_tls})"
    backend = SmtpBackend(
        host=settings.smtp_host,
        port=settings.smtp_port_or_default,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        timeout_seconds=timeout_seconds,
    )
    try:
        async with asyncio.timeout(timeout_seconds * 3 + 0.5):  # connect, TLS, login
            await backend.verify()
    except Exception as exc:
        return [
            Check(
                "smtp",
                Status.FAIL,
                f"{shown} refused or did not answer ({_reason(exc)}): mail waits in the outbox "
                "and is retried until its link expires",
                "Check SMTP_HOST, SMTP_PORT and SMTP_TLS (starttls: 587, tls: 465), the "
                "credentials, and that the server's certificate is trusted (SSL_CERT_FILE).",
            )
        ]
    login = ", login accepted" if settings.smtp_username else ""
    return [Check("smtp", Status.OK, f"{shown} answers{login}")]
