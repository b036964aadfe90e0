"""`myideas doctor`'s checks: each one red under a configuration that breaks, green when healthy.

Reachability checks run against the real world on loopback: the SQLite file and PostgreSQL of the
suite, the machine's Redis, ports where nothing listens or nothing answers, and a small stub of
Supabase Auth's three endpoints.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from backend.app.core.security import CookiePolicy
from backend.app.core.server_secrets import app_secret, signing_key
from backend.app.core.settings import Settings
from backend.app.db.migrate import upgrade_to_head
from backend.app.doctor import (
    ENV_FILE,
    FRONTEND_CONFIG,
    Check,
    ConfigurationRefused,
    Status,
    check_api_base_url,
    check_cookies,
    check_cors,
    check_database,
    check_dotenv,
    check_logging,
    check_redis,
    check_secrets,
    check_supabase,
    load_settings,
    log_startup_checks,
    read_api_base_url,
)
from backend.tests.helpers import free_port, signing_key_pem

SECRET = "s3cret-value-that-must-never-be-printed-0123456789"
ANON_KEY = "anon-key-value-never-printed"
SERVICE_KEY = "service-key-value-never-printed"


def statuses(checks: list[Check]) -> list[Status]:
    return [check.status for check in checks]


def worst(checks: list[Check]) -> Status:
    order = [Status.OK, Status.WARN, Status.FAIL]
    return max((check.status for check in checks), key=order.index)


def text_of(checks: list[Check]) -> str:
    return "\n".join(f"{check.message} {check.fix}" for check in checks)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Factory: `environment(NAME=value, ...)` sets exactly these settings in the environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)

    def set_environment(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_environment


@pytest.fixture
def settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return Settings(_env_file=None, data_dir=tmp_path, **overrides)

    return make


class TestLoadSettings:
    def test_healthy_configuration_is_ok(self, environment, tmp_path):
        environment()

        settings, checks = load_settings(tmp_path / ".env")

        assert settings is not None
        assert statuses(checks) == [Status.OK]

    def test_refused_configuration_is_a_failed_check_not_a_traceback(self, environment, tmp_path):
        """Production without secrets: Settings refuses; the doctor reports and reads on."""
        environment(ENVIRONMENT="production", SECRET_KEY="change-me")

        settings, checks = load_settings(tmp_path / ".env")

        assert statuses(checks) == [Status.FAIL]
        assert "JWT_PRIVATE_KEY must be set to a real secret in production" in checks[0].message
        assert settings is not None
        assert settings.is_production

    def test_wildcard_origin_is_read_as_written_for_the_cors_check(self, environment, tmp_path):
        environment(CORS_ORIGINS="*")

        settings, checks = load_settings(tmp_path / ".env")

        assert statuses(checks) == [Status.FAIL]
        assert settings is not None
        assert statuses(check_cors(settings.cors_origins, None)) == [Status.FAIL]

    def test_value_of_the_wrong_type_is_a_failed_check_without_its_value(
        self, environment, tmp_path
    ):
        environment(ACCESS_TOKEN_TTL_SECONDS="not-a-number-xyz")

        settings, checks = load_settings(tmp_path / ".env")

        assert settings is None
        assert statuses(checks) == [Status.FAIL]
        assert "ACCESS_TOKEN_TTL_SECONDS" in checks[0].message
        assert "not-a-number-xyz" not in checks[0].message


class TestDotenv:
    def test_no_dotenv_is_ok_and_says_where_it_looked(self, tmp_path):
        checks = check_dotenv(tmp_path / ".env", environ={}, cwd=tmp_path)

        assert statuses(checks) == [Status.OK]
        assert f"no .env (looked for {tmp_path / '.env'})" in checks[0].message

    def test_loaded_dotenv_names_its_settings_not_their_values(self, tmp_path):
        env_file = tmp_path / ".env"
        env_file.write_text(f"SECRET_KEY={SECRET}\nCORS_ORIGINS=http://localhost:5173\n")

        checks = check_dotenv(env_file, environ={}, cwd=tmp_path)

        assert statuses(checks) == [Status.OK]
        assert f"loaded {env_file}: CORS_ORIGINS, SECRET_KEY" in checks[0].message
        assert SECRET not in text_of(checks)

    def test_unreadable_line_is_red(self, tmp_path):
        env_file = tmp_path / ".env"
        env_file.write_text('CORS_ORIGINS=http://localhost:5173\nthis is not a setting\nX="open\n')

        checks = check_dotenv(env_file, environ={}, cwd=tmp_path)

        assert worst(checks) is Status.FAIL
        assert "line(s) 2, 3 cannot be read" in text_of(checks)

    def test_dotenv_in_the_working_directory_only_is_red(self, tmp_path):
        """The classic: `.env` next to where uvicorn was started, not at the repository root."""
        elsewhere = tmp_path / "backend"
        elsewhere.mkdir()
        (elsewhere / ".env").write_text("SECRET_KEY=x\n")

        checks = check_dotenv(tmp_path / ".env", environ={}, cwd=elsewhere)

        assert worst(checks) is Status.FAIL
        assert f"{elsewhere / '.env'} is never read" in text_of(checks)

    def test_environment_overriding_dotenv_is_named_without_values(self, tmp_path):
        env_file = tmp_path / ".env"
        env_file.write_text(f"SECRET_KEY={SECRET}\nREDIS_URL=redis://a\n")

        checks = check_dotenv(
            env_file,
            environ={"SECRET_KEY": "other-value-9", "REDIS_URL": "redis://a"},
            cwd=tmp_path,
        )

        assert worst(checks) is Status.WARN
        assert "the environment wins: SECRET_KEY" in text_of(checks)
        assert "REDIS_URL" not in checks[-1].message  # same value: nothing to say
        assert SECRET not in text_of(checks)
        assert "other-value-9" not in text_of(checks)

    def test_unknown_name_is_a_warning(self, tmp_path):
        env_file = tmp_path / ".env"
        env_file.write_text("CORS_ORIGIN=http://localhost:5173\n")

        checks = check_dotenv(env_file, environ={}, cwd=tmp_path)

        assert worst(checks) is Status.WARN
        assert "ignored: CORS_ORIGIN" in text_of(checks)


class TestCors:
    def test_spa_origin_listed_is_ok(self):
        checks = check_cors(["http://localhost:5173"], "http://localhost:5173")

        assert statuses(checks) == [Status.OK]

    @pytest.mark.parametrize(
        ("origin", "complaint"),
        [
            ("*", "contains '*'"),
            ("http://localhost:5173/", "has a trailing slash"),
            ("http://localhost:5173/app", "has a path"),
            ("https://app.example.com:443", "names the default port"),
            ("localhost:5173", "is not an http(s) origin"),
        ],
    )
    def test_malformed_origin_is_red(self, origin, complaint):
        checks = check_cors([origin], None)

        assert statuses(checks) == [Status.FAIL]
        assert complaint in checks[0].message

    def test_localhost_against_127_0_0_1_is_red_and_explained(self):
        checks = check_cors(["http://127.0.0.1:5173"], "http://localhost:5173")

        assert statuses(checks) == [Status.FAIL]
        assert "localhost and 127.0.0.1 as different origins" in checks[0].message
        assert "CORS_ORIGINS=http://127.0.0.1:5173,http://localhost:5173" in checks[0].fix

    def test_spa_origin_missing_is_red(self):
        checks = check_cors(["https://app.example.com"], "http://localhost:5173")

        assert statuses(checks) == [Status.FAIL]
        assert "origin_not_allowed" in checks[0].message


class TestApiBaseUrl:
    def test_the_spa_config_names_the_api(self):
        assert read_api_base_url(FRONTEND_CONFIG) == "http://localhost:8000"

    def test_same_port_on_loopback_is_ok(self):
        checks = check_api_base_url("http://localhost:8000", host="127.0.0.1", port=8000)

        assert statuses(checks) == [Status.OK]

    def test_port_mismatch_is_red(self):
        checks = check_api_base_url("http://localhost:8000", host="127.0.0.1", port=8001)

        assert statuses(checks) == [Status.FAIL]
        assert "the SPA calls port 8000" in checks[0].message
        assert "--port 8000" in checks[0].fix

    def test_api_listening_off_loopback_is_red_for_a_loopback_url(self):
        checks = check_api_base_url("http://localhost:8000", host="192.0.2.10", port=8000)

        assert statuses(checks) == [Status.FAIL]
        assert "listens on 192.0.2.10 only" in checks[0].message

    def test_https_to_a_plain_http_server_is_red(self):
        checks = check_api_base_url("https://localhost:8000", host="127.0.0.1", port=8000)

        assert statuses(checks) == [Status.FAIL]

    def test_remote_url_is_a_warning_about_the_proxy(self):
        checks = check_api_base_url("https://api.example.com", host="127.0.0.1", port=8000)

        assert statuses(checks) == [Status.WARN]
        assert "through a proxy" in checks[0].message

    def test_missing_config_is_a_warning(self, tmp_path):
        url = read_api_base_url(tmp_path / "config.js")

        checks = check_api_base_url(url, host="127.0.0.1", port=8000)

        assert url is None
        assert statuses(checks) == [Status.WARN]

    def test_url_literal_is_read_from_the_file(self, tmp_path):
        config = tmp_path / "config.js"
        config.write_text('const DEFAULT_API_BASE_URL = "http://127.0.0.1:9000/";\n')

        assert read_api_base_url(config) == "http://127.0.0.1:9000"


class TestCookies:
    LAX_DEV = CookiePolicy(secure=False, session_ttl_seconds=60)

    def test_same_site_is_ok(self):
        checks = check_cookies(
            self.LAX_DEV, spa_origin="http://localhost:5173", api_base_url="http://localhost:8000"
        )

        assert statuses(checks) == [Status.OK]
        assert "SameSite=Lax" in checks[0].message

    def test_localhost_spa_against_127_0_0_1_api_is_red(self):
        checks = check_cookies(
            self.LAX_DEV, spa_origin="http://127.0.0.1:5173", api_base_url="http://localhost:8000"
        )

        assert statuses(checks) == [Status.FAIL]
        assert "localhost and 127.0.0.1 are different sites" in checks[0].message
        assert "POST /auth/refresh never gets it" in checks[0].message

    def test_different_registrable_domains_are_red_with_the_fix(self):
        policy = CookiePolicy(secure=True, session_ttl_seconds=60)

        checks = check_cookies(
            policy, spa_origin="https://myideas.app", api_base_url="https://api.example.com"
        )

        assert statuses(checks) == [Status.FAIL]
        assert "subdomain of the SPA's domain" in checks[0].fix

    def test_subdomains_of_one_site_are_ok(self):
        policy = CookiePolicy(secure=True, session_ttl_seconds=60)

        checks = check_cookies(
            policy, spa_origin="https://app.example.com", api_base_url="https://api.example.com"
        )

        assert statuses(checks) == [Status.OK]

    def test_samesite_none_without_secure_is_red(self):
        policy = CookiePolicy(secure=False, session_ttl_seconds=60, samesite="none")

        checks = check_cookies(policy, spa_origin=None, api_base_url=None)

        assert statuses(checks) == [Status.FAIL]
        assert "SameSite=None without Secure" in checks[0].message

    def test_samesite_none_across_sites_warns_of_third_party_blocking(self):
        policy = CookiePolicy(secure=True, session_ttl_seconds=60, samesite="none")

        checks = check_cookies(
            policy, spa_origin="https://myideas.app", api_base_url="https://api.example.com"
        )

        assert statuses(checks) == [Status.WARN]
        assert "Safari blocks" in checks[0].message

    def test_secure_on_plain_http_is_red(self):
        policy = CookiePolicy(secure=True, session_ttl_seconds=60)

        checks = check_cookies(
            policy, spa_origin="http://app.example.com", api_base_url="http://api.example.com"
        )

        assert statuses(checks) == [Status.FAIL]
        assert "drops a Secure cookie set over http" in checks[0].message

    def test_secure_on_http_localhost_is_a_warning(self):
        policy = CookiePolicy(secure=True, session_ttl_seconds=60)

        checks = check_cookies(
            policy, spa_origin="http://localhost:5173", api_base_url="http://localhost:8000"
        )

        assert statuses(checks) == [Status.WARN]
        assert "Safari does not" in checks[0].message


class TestSecrets:
    def test_development_is_ok(self, settings):
        assert statuses(check_secrets(settings())) == [Status.OK]

    def test_production_with_real_secrets_is_ok(self, settings):
        checks = check_secrets(
            settings(environment="production", jwt_private_key=signing_key_pem(), secret_key=SECRET)
        )

        assert statuses(checks) == [Status.OK]

    def test_production_missing_and_placeholder_secrets_are_red(self, environment, tmp_path):
        environment(ENVIRONMENT="production", SECRET_KEY="change-me", DATA_DIR=str(tmp_path))
        settings, _ = load_settings(None)
        assert settings is not None

        checks = check_secrets(settings)

        assert statuses(checks) == [Status.FAIL, Status.FAIL]
        assert "JWT_PRIVATE_KEY is missing in production" in checks[0].message
        assert "SECRET_KEY is a placeholder in production" in checks[1].message

    def test_development_keys_in_production_are_red(self, settings, tmp_path):
        development = settings()
        signing_key(development)  # generates both, as a development start does
        app_secret(development)

        checks = check_secrets(
            settings(
                environment="production",
                jwt_private_key=(tmp_path / "jwt_signing_key.pem").read_text(),
                secret_key=(tmp_path / "secret_key").read_text(),
            )
        )

        assert statuses(checks) == [Status.FAIL, Status.FAIL]
        assert "is the development key generated in" in text_of(checks)

    def test_signing_key_that_is_not_p256_is_red(self, settings):
        checks = check_secrets(settings(jwt_private_key="-----BEGIN PRIVATE KEY-----\nxx"))

        assert worst(checks) is Status.FAIL
        assert "not an EC P-256 private key" in checks[0].message

    def test_short_secret_key_in_production_is_a_warning(self, settings):
        checks = check_secrets(
            settings(
                environment="production",
                jwt_private_key=signing_key_pem(),
                secret_key="short-but-real",
            )
        )

        assert statuses(checks) == [Status.WARN]


class TestLogging:
    def test_debug_in_production_is_red(self, settings):
        production = settings(
            environment="production", jwt_private_key=signing_key_pem(), secret_key=SECRET
        )

        checks = check_logging(production, level=logging.DEBUG, source="the root logger")

        assert statuses(checks) == [Status.FAIL]

    @pytest.mark.parametrize("environment", ["development", "production"])
    def test_info_is_ok_and_debug_is_ok_in_development(self, settings, environment):
        level = logging.INFO if environment == "production" else logging.DEBUG
        configured = settings(
            environment=environment, jwt_private_key=signing_key_pem(), secret_key=SECRET
        )

        assert statuses(check_logging(configured, level=level, source="x")) == [Status.OK]


async def _migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'doctor.db'}"
    await upgrade_to_head(url)
    return url


def _set_revision(url: str, revision: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))


class TestDatabase:
    async def test_migrated_sqlite_is_ok_and_at_head(self, tmp_path):
        url = await _migrated_sqlite(tmp_path)

        checks = await check_database(url)

        assert statuses(checks) == [Status.OK, Status.OK]
        assert [check.name for check in checks] == ["database", "migrations"]

    @pytest.mark.postgres
    async def test_migrated_postgres_is_ok(self, fresh_postgres_url):
        await upgrade_to_head(fresh_postgres_url)

        checks = await check_database(fresh_postgres_url)

        assert statuses(checks) == [Status.OK, Status.OK]

    async def test_sqlite_file_not_created_yet_is_a_warning(self, tmp_path):
        checks = await check_database(f"sqlite:///{tmp_path / 'later.db'}")

        assert statuses(checks) == [Status.WARN]
        assert not (tmp_path / "later.db").exists()  # looking does not create it

    async def test_postgres_refusing_connections_is_red_without_the_password(self):
        url = f"postgresql://postgres:pw-{SECRET}@127.0.0.1:{free_port()}/myideas"

        checks = await check_database(url, timeout_seconds=1)

        assert statuses(checks) == [Status.FAIL]
        assert "cannot reach postgresql://postgres:***@127.0.0.1" in checks[0].message
        assert SECRET not in text_of(checks)

    async def test_postgres_that_never_answers_is_red_within_the_timeout(self):
        writers: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)  # accepts, never answers

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        started = time.monotonic()
        try:
            checks = await check_database(
                f"postgresql://postgres@127.0.0.1:{port}/x", timeout_seconds=0.5
            )
        finally:
            server.close()
            for writer in writers:
                writer.close()
                await writer.wait_closed()
            await server.wait_closed()

        assert statuses(checks) == [Status.FAIL]
        assert time.monotonic() - started < 2.5

    async def test_schema_not_created_is_a_warning(self, tmp_path):
        sqlite3.connect(tmp_path / "empty.db").close()

        checks = await check_database(f"sqlite:///{tmp_path / 'empty.db'}")

        assert statuses(checks) == [Status.OK, Status.WARN]

    async def test_schema_behind_head_is_a_warning(self, tmp_path):
        url = await _migrated_sqlite(tmp_path)
        _set_revision(url, "0001")

        checks = await check_database(url)

        assert statuses(checks) == [Status.OK, Status.WARN]
        assert "start-up upgrades it" in checks[1].message

    async def test_schema_from_a_newer_version_is_red(self, tmp_path):
        url = await _migrated_sqlite(tmp_path)
        _set_revision(url, "9999_from_the_future")

        checks = await check_database(url)

        assert statuses(checks) == [Status.OK, Status.FAIL]
        assert "9999_from_the_future" in checks[1].message

    async def test_unsupported_database_is_red(self):
        checks = await check_database("mysql://root@127.0.0.1/x")

        assert statuses(checks) == [Status.FAIL]


class TestRedis:
    async def test_not_configured_is_ok(self):
        assert statuses(await check_redis(None)) == [Status.OK]

    @pytest.mark.redis
    async def test_answering_redis_is_ok(self):
        assert statuses(await check_redis("redis://127.0.0.1:6379/0")) == [Status.OK]

    async def test_unreachable_redis_is_red_without_the_password(self):
        checks = await check_redis(
            f"redis://:{SECRET}@127.0.0.1:{free_port()}/0", timeout_seconds=1
        )

        assert statuses(checks) == [Status.FAIL]
        assert "sign-in keeps working" in checks[0].message
        assert SECRET not in text_of(checks)


class SupabaseStub:
    """Supabase Auth's health, JWKS and admin endpoints on loopback, with its key rules."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": [{"kty": "EC", "alg": "ES256", "kid": "k1"}]}
        self.delay_seconds = 0.0
        self.everything_404 = False
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                time.sleep(stub.delay_seconds)
                apikey = self.headers.get("apikey")
                if stub.everything_404:
                    self._answer(404, {"message": "no route"})
                elif self.path == "/auth/v1/health":
                    ok = apikey in (ANON_KEY, SERVICE_KEY)
                    self._answer(200 if ok else 401, {"message": "ok" if ok else "Invalid API key"})
                elif self.path == "/auth/v1/.well-known/jwks.json":
                    self._answer(200, stub.jwks)
                elif self.path.startswith("/auth/v1/admin/users"):
                    bearer = self.headers.get("Authorization") == f"Bearer {SERVICE_KEY}"
                    ok = apikey == SERVICE_KEY and bearer
                    self._answer(200 if ok else 403, {"users": []} if ok else {"msg": "not admin"})
                else:
                    self._answer(404, {})

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def supabase() -> Iterator[SupabaseStub]:
    stub = SupabaseStub()
    yield stub
    stub.close()


@pytest.fixture
def supabase_settings(settings, supabase) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "auth_provider": "supabase",
            "supabase_url": supabase.url,
            "supabase_anon_key": ANON_KEY,
            "supabase_service_role_key": SERVICE_KEY,
        }
        return settings(**(values | overrides))  # type: ignore[no-any-return]

    return make


def by_name(checks: list[Check]) -> dict[str, Status]:
    return {check.name: check.status for check in checks}


class TestSupabase:
    async def test_embedded_provider_has_nothing_to_check(self, settings):
        assert await check_supabase(settings()) == []

    async def test_healthy_project_is_ok(self, supabase_settings):
        checks = await check_supabase(supabase_settings())

        assert by_name(checks) == {
            "supabase url": Status.OK,
            "supabase anon key": Status.OK,
            "supabase jwks": Status.OK,
            "supabase service key": Status.OK,
        }
        assert ANON_KEY not in text_of(checks)
        assert SERVICE_KEY not in text_of(checks)

    async def test_missing_url_is_red(self, environment):
        environment(AUTH_PROVIDER="supabase", SUPABASE_ANON_KEY=ANON_KEY)
        settings, _ = load_settings(None)  # Settings refuses it; the doctor reads it as written
        assert settings is not None

        checks = await check_supabase(settings)

        assert by_name(checks) == {"supabase url": Status.FAIL}

    async def test_unreachable_url_is_red(self, supabase_settings):
        url = f"http://127.0.0.1:{free_port()}"

        checks = await check_supabase(supabase_settings(supabase_url=url), timeout_seconds=1)

        assert by_name(checks) == {"supabase url": Status.FAIL}

    async def test_url_that_does_not_answer_in_time_is_red(self, supabase_settings, supabase):
        supabase.delay_seconds = 1.0
        started = time.monotonic()

        checks = await check_supabase(supabase_settings(), timeout_seconds=0.3)

        assert by_name(checks) == {"supabase url": Status.FAIL}
        assert time.monotonic() - started < 1.0

    async def test_url_without_supabase_auth_is_red(self, supabase_settings, supabase):
        supabase.everything_404 = True

        checks = await check_supabase(supabase_settings())

        assert by_name(checks)["supabase url"] is Status.FAIL
        assert "without /auth/v1" in checks[0].fix

    async def test_wrong_anon_key_is_red(self, supabase_settings):
        checks = await check_supabase(supabase_settings(supabase_anon_key="wrong-anon"))

        assert by_name(checks)["supabase anon key"] is Status.FAIL
        assert "wrong-anon" not in text_of(checks)

    async def test_anon_key_given_as_service_key_is_red(self, supabase_settings):
        checks = await check_supabase(supabase_settings(supabase_service_role_key=ANON_KEY))

        assert by_name(checks)["supabase service key"] is Status.FAIL
        assert "is it the anon key" in text_of(checks)

    async def test_missing_keys_are_red(self, environment, supabase):
        environment(AUTH_PROVIDER="supabase", SUPABASE_URL=supabase.url)
        settings, _ = load_settings(None)
        assert settings is not None

        checks = await check_supabase(settings)

        assert by_name(checks)["supabase anon key"] is Status.FAIL
        assert by_name(checks)["supabase service key"] is Status.FAIL

    async def test_empty_jwks_without_jwt_secret_is_red(self, supabase_settings, supabase):
        supabase.jwks = {"keys": []}

        red = await check_supabase(supabase_settings())
        green = await check_supabase(supabase_settings(supabase_jwt_secret="x" * 40))

        assert by_name(red)["supabase jwks"] is Status.FAIL
        assert by_name(green)["supabase jwks"] is Status.OK

    async def test_jwt_secret_that_does_not_verify_the_anon_key_is_red(self, supabase_settings):
        legacy_anon = jwt.encode({"role": "anon"}, "the-project-secret-" + "x" * 20)

        red = await check_supabase(
            supabase_settings(supabase_anon_key=legacy_anon, supabase_jwt_secret="y" * 40)
        )
        green = await check_supabase(
            supabase_settings(
                supabase_anon_key=legacy_anon, supabase_jwt_secret="the-project-secret-" + "x" * 20
            )
        )

        assert by_name(red)["supabase jwt secret"] is Status.FAIL
        assert by_name(green)["supabase jwt secret"] is Status.OK


class TestStartup:
    def test_healthy_configuration_logs_one_line_per_check(self, settings, caplog):
        caplog.set_level(logging.INFO, logger="backend.app.doctor")

        checks = log_startup_checks(settings(), env_file=Path("/nonexistent/.env"))

        records = [r for r in caplog.records if r.name == "backend.app.doctor"]
        assert len(records) == len(checks)
        assert all(record.levelno == logging.INFO for record in records)
        assert "[REDACTED" not in caplog.text  # no message looks like a secret to the redaction

    def test_failed_check_in_development_is_a_warning_only(self, settings, caplog):
        caplog.set_level(logging.INFO, logger="backend.app.doctor")

        log_startup_checks(settings(cors_origins=["http://localhost:5173/"]))

        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            "doctor fail cors: CORS_ORIGINS entry 'http://localhost:5173/' has a trailing "
            "slash; a browser's Origin header never does, so it never matches"
        ]

    def test_failed_check_stops_a_production_start(self, settings, tmp_path, caplog):
        development = settings()
        signing_key(development)
        production = settings(
            environment="production",
            jwt_private_key=(tmp_path / "jwt_signing_key.pem").read_text(),
            secret_key=SECRET,
        )

        with pytest.raises(ConfigurationRefused, match="development key"):
            log_startup_checks(production)

        assert any(r.levelno == logging.ERROR for r in caplog.records)
        assert SECRET not in caplog.text

    async def test_start_services_refuses_debug_logging_in_production(self, settings, tmp_path):
        from backend.app.services import start_services

        production = settings(
            environment="production",
            jwt_private_key=signing_key_pem(),
            secret_key=SECRET,
            database_url=f"sqlite:///{tmp_path / 'prod.db'}",
        )
        root = logging.getLogger()
        previous = root.level
        root.setLevel(logging.DEBUG)
        try:
            with pytest.raises(ConfigurationRefused, match="DEBUG logging in production"):
                await start_services(production)
        finally:
            root.setLevel(previous)

        assert not (tmp_path / "prod.db").exists()  # stopped before anything was touched


def test_env_file_is_the_one_settings_read():
    assert Settings.model_config["env_file"] == ENV_FILE
