"""`myideas doctor`: the configuration a user actually has, checked against the running world.

Every check returns `Check(name, status, message, fix)` rows, one per finding; a healthy check is
one `ok` row. The configuration checks are plain functions of a `Settings` object and what the
caller tells them (the address the API serves on, the SPA's origin, the environment); the
reachability checks (database, Redis, Supabase) are async and give up after `timeout_seconds`.

`diagnose()` runs them all for the command. `log_startup_checks()` runs the configuration checks
when the app starts, one log line each; in production a failed one stops the start. Start-up does
not repeat the reachability checks: it connects to the database anyway (and migrates it), and the
rate limiter already fails open and logs when Redis is down.

No message ever holds a secret's value: secrets are named, never shown, and URLs are printed
without their password.

    checks.py         Check, Status
    configuration.py  settings as loaded, .env provenance, production secrets, logging, mail
    browser.py        CORS, the SPA's API URL against the served address, the refresh cookie
    reachability.py   the database and its migrations, Redis, Supabase's URL, JWKS and keys,
                      the SMTP server
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from backend.app.core.settings import Settings
from backend.app.doctor.browser import (
    FRONTEND_CONFIG,
    check_api_base_url,
    check_cookies,
    check_cors,
    cookie_policy,
    read_api_base_url,
)
from backend.app.doctor.checks import Check, Status
from backend.app.doctor.configuration import (
    ENV_FILE,
    check_dotenv,
    check_logging,
    check_mail,
    check_password_settings,
    check_secrets,
    load_settings,
)
from backend.app.doctor.reachability import (
    TIMEOUT_SECONDS,
    check_database,
    check_redis,
    check_smtp,
    check_supabase,
)

__all__ = [
    "ENV_FILE",
    "FRONTEND_CONFIG",
    "TIMEOUT_SECONDS",
    "Check",
    "ConfigurationRefused",
    "Serving",
    "Status",
    "check_api_base_url",
    "check_cookies",
    "check_cors",
    "check_database",
    "check_dotenv",
    "check_logging",
    "check_mail",
    "check_password_settings",
    "check_redis",
    "check_secrets",
    "check_smtp",
    "check_supabase",
    "diagnose",
    "load_settings",
    "log_startup_checks",
    "read_api_base_url",
]

logger = logging.getLogger("backend.app.doctor")


@dataclass(frozen=True, slots=True)
class Serving:
    """Where the API is served and where the SPA runs (`myideas serve`'s defaults)."""

    host: str = "127.0.0.1"
    port: int = 8000
    spa_origin: str = "http://localhost:5173"


class ConfigurationRefused(RuntimeError):
    """A production start found a failed configuration check."""


def _configuration_checks(
    settings: Settings,
    *,
    serving: Serving | None,
    api_base_url: str | None,
    frontend_config: Path,
) -> list[Check]:
    checks = check_cors(settings.cors_origins, serving.spa_origin if serving else None)
    if serving is not None:
        checks += check_api_base_url(
            api_base_url, host=serving.host, port=serving.port, source=frontend_config
        )
    checks += check_cookies(
        cookie_policy(settings),
        spa_origin=serving.spa_origin if serving else None,
        api_base_url=api_base_url if serving else None,
    )
    checks += check_secrets(settings)
    if serving is None:  # at start-up: the level this process logs at
        level, source = logging.getLogger().getEffectiveLevel(), "the root logger"
    else:  # the doctor cannot see the server's process
        level, source = logging.INFO, "the level myideas serve logs at"
    checks += check_logging(settings, level=level, source=source)
    checks += check_mail(settings)
    checks += check_password_settings(settings)
    return checks


async def diagnose(
    *,
    serving: Serving | None = None,
    env_file: Path = ENV_FILE,
    frontend_config: Path = FRONTEND_CONFIG,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> list[Check]:
    """Every check, for `myideas doctor`: the configuration, then what answers (concurrently)."""
    settings, checks = load_settings(env_file)
    checks += check_dotenv(env_file, environ=os.environ, cwd=Path.cwd())
    if settings is None:
        return checks
    checks += _configuration_checks(
        settings,
        serving=serving or Serving(),
        api_base_url=read_api_base_url(frontend_config),
        frontend_config=frontend_config,
    )
    for found in await asyncio.gather(
        check_database(settings.database_url, timeout_seconds=timeout_seconds),
        check_redis(settings.redis_url, timeout_seconds=timeout_seconds),
        check_supabase(settings, timeout_seconds=timeout_seconds),
        check_smtp(settings, timeout_seconds=timeout_seconds),
    ):
        checks += found
    return checks


def log_startup_checks(settings: Settings, *, env_file: Path = ENV_FILE) -> list[Check]:
    """Run the configuration checks at start-up, one log line each.

    Not the ones that need the browser's view (the SPA's origin, the address it calls), which
    the app cannot know, nor the reachability ones (see the module docstring).

    Raises:
        ConfigurationRefused: in production, when a check failed.
    """
    checks = check_dotenv(env_file, environ=os.environ, cwd=Path.cwd())
    checks += _configuration_checks(
        settings, serving=None, api_base_url=None, frontend_config=FRONTEND_CONFIG
    )
    for check in checks:
        level = logging.INFO if check.status is Status.OK else logging.WARNING
        if check.status is Status.FAIL and settings.is_production:
            level = logging.ERROR
        logger.log(
            level,
            "doctor %s %s: %s",
            check.status,
            check.name,
            check.message,
            extra={"check": check.name, "status": str(check.status), "fix": check.fix},
        )
    failed = [check for check in checks if check.status is Status.FAIL]
    if failed and settings.is_production:
        raise ConfigurationRefused(
            "refusing to start in production: "
            + "; ".join(f"{check.name}: {check.message}" for check in failed)
            + " (run `myideas doctor` for the fixes)"
        )
    return checks
