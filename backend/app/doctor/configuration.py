"""Checks of the configuration itself: which settings, from where, and safe for production.

Plain functions of a `Settings` object and what the caller passes in (the environment, the
working directory, the log level); no network.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import SecretStr, ValidationError

from backend.app.core.server_secrets import signing_key
from backend.app.core.settings import PROJECT_ROOT, Settings, SmtpTls, is_placeholder_secret
from backend.app.doctor.checks import Check, Status

__all__ = [
    "ENV_FILE",
    "check_dotenv",
    "check_logging",
    "check_mail",
    "check_password_settings",
    "check_secrets",
    "load_settings",
]

ENV_FILE = PROJECT_ROOT / ".env"
_DEFAULT_PASSWORD_MIN_LENGTH = 8  # Settings' default (and identity/passwords.py's)


class _AsWritten(Settings):
    """Settings as the user wrote them, without the refusals of `Settings` (a `*` origin; missing
    production secrets; Supabase's URL or keys missing), so the doctor's checks can say what is
    wrong and how to fix it instead of stopping at the first refusal. Used by the doctor only,
    never to run the app; `test_doctor.py` fails if a rename makes these overrides miss."""

    @classmethod
    def _refuse_wildcard(cls, origins: list[str]) -> list[str]:
        return origins

    # Replaces the validator of the same name (pydantic looks validators up by name).
    def _fill_defaults_and_check_production(self) -> Settings:  # type: ignore[override]
        if not self.database_url:  # the default of Settings
            self.database_url = f"sqlite:///{self.data_dir / 'myideas.db'}"
        if not self.site_url and self.cors_origins:  # the default of Settings
            self.site_url = self.cors_origins[0]
        return self


def load_settings(env_file: Path | None = ENV_FILE) -> tuple[Settings | None, list[Check]]:
    """The settings from the environment and `env_file`, and a `settings` check.

    A configuration that `Settings` refuses is a failed check (with each field's complaint, never
    its value), and the settings are then read as written, so the other checks still run; None
    only when even that is impossible (a value of the wrong type).
    """
    try:
        settings = Settings(_env_file=env_file)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        refused = Check(
            "settings",
            Status.FAIL,
            f"the app refuses to start with this configuration: {problems}",
            f"Correct the environment{f' or {env_file}' if env_file else ''}; the other "
            "checks say how.",
        )
        try:
            return _AsWritten(_env_file=env_file), [refused]
        except ValidationError:
            return None, [refused]
    try:
        database = sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        database = "(not a URL)"
    return settings, [
        Check(
            "settings",
            Status.OK,
            f"environment={settings.environment}, provider={settings.auth_provider}, "
            f"database={database}",
        )
    ]


def _describe(error: Mapping[str, Any]) -> str:
    # `input` is the offending value, possibly a secret: only the field and the complaint.
    field = ".".join(str(part).upper() for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


def check_dotenv(
    env_file: Path,
    *,
    environ: Mapping[str, str],
    cwd: Path,
    field_names: Iterable[str] = Settings.model_fields,
) -> list[Check]:
    """Which `.env` is read, from where; names in the environment that override it; strays."""
    fields = {name.lower() for name in field_names}
    environment = {name.lower(): value for name, value in environ.items()}
    from_environment = sorted(name.upper() for name in fields if name in environment)
    checks: list[Check] = []
    strays = sorted(
        {path for path in (cwd / ".env", PROJECT_ROOT / "backend" / ".env") if path.is_file()}
        - {env_file}
    )
    for stray in strays:
        checks.append(
            Check(
                ".env",
                Status.WARN if env_file.is_file() else Status.FAIL,
                f"{stray} is never read: the app reads {env_file} only, whatever the working "
                "directory",
                f"Move its settings into {env_file}.",
            )
        )
    if not env_file.is_file():
        source = f"from the environment: {', '.join(from_environment)}" if from_environment else ""
        checks.insert(
            0,
            Check(
                ".env",
                Status.OK,
                f"no .env (looked for {env_file}); settings come from the environment and the "
                f"defaults{'; ' + source if source else ''}",
            ),
        )
        return checks
    with env_file.open(encoding="utf-8") as stream:
        unparsed = [binding.original.line for binding in parse_stream(stream) if binding.error]
    values = dotenv_values(env_file, encoding="utf-8")
    names = sorted(values)
    unknown = [name for name in names if name.lower() not in fields]
    overridden = [
        name
        for name in names
        if name.lower() in fields
        and name.lower() in environment
        and environment[name.lower()] != (values[name] or "")
    ]
    settings_in_file = [name for name in names if name.lower() in fields]
    checks.insert(
        0,
        Check(
            ".env",
            Status.OK,
            f"loaded {env_file}: {', '.join(settings_in_file) or 'no settings'}",
        ),
    )
    if unparsed:
        checks.append(
            Check(
                ".env",
                Status.FAIL,
                f"{env_file}: line(s) {', '.join(map(str, unparsed))} cannot be read and are "
                "skipped: their settings have no effect",
                "Write each line as NAME=value; quote a value with spaces or #, and close every "
                "quote.",
            )
        )
    if unknown:
        checks.append(
            Check(
                ".env",
                Status.WARN,
                f"not settings of this app, ignored: {', '.join(unknown)}",
                "Check the spelling against the README's configuration table.",
            )
        )
    if overridden:
        checks.append(
            Check(
                ".env",
                Status.WARN,
                f"set in the environment with another value than in .env, the environment wins: "
                f"{', '.join(overridden)}",
                f"Unset them in the shell (unset {' '.join(overridden)}) or edit them there.",
            )
        )
    return checks


def _same_as_file(secret: SecretStr | None, path: Path) -> bool:
    try:
        return secret is not None and path.read_text().strip() == (
            secret.get_secret_value().strip()
        )
    except (OSError, UnicodeDecodeError):
        return False


def check_secrets(settings: Settings) -> list[Check]:
    """Production: real secrets, not the development keys; everywhere: a usable signing key."""
    checks: list[Check] = []
    if settings.jwt_private_key is not None and not is_placeholder_secret(settings.jwt_private_key):
        try:
            signing_key(settings)
        except Exception:
            checks.append(
                Check(
                    "secrets",
                    Status.FAIL,
                    "JWT_PRIVATE_KEY is not an EC P-256 private key in PEM form: the app "
                    "cannot sign tokens",
                    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 (PKCS#8 PEM).",
                )
            )
    if not settings.is_production:
        checks.append(
            Check(
                "secrets",
                Status.OK,
                f"development: keys not set are generated into {settings.data_dir}",
            )
        )
        return checks
    generated = {
        "JWT_PRIVATE_KEY": (settings.jwt_private_key, settings.data_dir / "jwt_signing_key.pem"),
        "SECRET_KEY": (settings.secret_key, settings.data_dir / "secret_key"),
    }
    fixes = {
        "JWT_PRIVATE_KEY": "Set JWT_PRIVATE_KEY to the PEM of a P-256 key made for production "
        "(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256).",
        "SECRET_KEY": "Set SECRET_KEY to a random value made for production "
        '(python -c "import secrets; print(secrets.token_urlsafe(48))").',
    }
    for name, (secret, dev_file) in generated.items():
        if is_placeholder_secret(secret):
            state = "missing" if secret is None else "a placeholder"
            checks.append(
                Check(
                    "secrets",
                    Status.FAIL,
                    f"{name} is {state} in production: the app refuses to start",
                    fixes[name],
                )
            )
        elif _same_as_file(secret, dev_file):
            checks.append(
                Check(
                    "secrets",
                    Status.FAIL,
                    f"{name} is the development key generated in {dev_file}: it has lived "
                    "unprotected on a development machine",
                    fixes[name],
                )
            )
    secret_key = settings.secret_key
    if (
        secret_key is not None
        and not is_placeholder_secret(secret_key)
        and len(secret_key.get_secret_value()) < 32
    ):
        checks.append(
            Check(
                "secrets",
                Status.WARN,
                "SECRET_KEY is shorter than 32 characters: guessable",
                fixes["SECRET_KEY"],
            )
        )
    if not checks:
        checks.append(Check("secrets", Status.OK, "production: JWT_PRIVATE_KEY and SECRET_KEY set"))
    return checks


def check_logging(settings: Settings, *, level: int, source: str) -> list[Check]:
    """No DEBUG logging in production.

    Args:
        level: the level the app logs at (at start-up, the root logger's).
        source: where that level comes from, for the message.
    """
    shown = f"{logging.getLevelName(level)} ({source})"
    if logging.NOTSET < level <= logging.DEBUG and settings.is_production:
        return [
            Check(
                "logging",
                Status.FAIL,
                f"DEBUG logging in production, {shown}: libraries log SQL statements, headers "
                "and request details; redaction is a safety net, not a licence",
                "Log at INFO in production (myideas serve does); drop --log-level debug.",
            )
        ]
    return [Check("logging", Status.OK, shown)]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_mail(settings: Settings) -> list[Check]:
    """Where mail goes, how it travels, and where its links lead (`SITE_URL`)."""
    checks: list[Check] = []
    site = urlsplit(settings.site_url)
    if site.scheme not in ("http", "https") or not site.hostname:
        checks.append(
            Check(
                "mail",
                Status.FAIL,
                f"SITE_URL {settings.site_url!r} is not an http(s) URL: the links in mails lead "
                "nowhere",
                "Set SITE_URL to the SPA's address, e.g. https://app.example.com",
            )
        )
    elif settings.is_production and site.scheme != "https":
        # On a loopback host the link never crosses a network (a production trial on one
        # machine), so a warning; anywhere else the token would travel in plain HTTP.
        local = _is_loopback(site.hostname)
        checks.append(
            Check(
                "mail",
                Status.WARN if local else Status.FAIL,
                f"SITE_URL is {settings.site_url} in production: "
                + (
                    "links open a local address that only this machine can follow"
                    if local
                    else "the links that carry confirmation and reset tokens would open over "
                    "plain HTTP"
                ),
                "Serve the SPA over HTTPS and set SITE_URL to its https:// address.",
            )
        )
    elif settings.site_url not in settings.cors_origins:
        checks.append(
            Check(
                "mail",
                Status.WARN,
                f"SITE_URL {settings.site_url} is not in CORS_ORIGINS: the SPA a link opens "
                "cannot call this API",
                "Add it to CORS_ORIGINS, or set SITE_URL to the SPA's origin.",
            )
        )
    _, sender = parseaddr(settings.mail_from)
    if "@" not in sender:
        checks.append(
            Check(
                "mail",
                Status.FAIL,
                f"MAIL_FROM {settings.mail_from!r} has no address: no mail can be sent",
                'Set MAIL_FROM to "Name <no-reply@your-domain>".',
            )
        )
    if not settings.smtp_host:
        outbox = settings.data_dir / "outbox"
        if settings.is_production:
            checks.append(
                Check(
                    "mail",
                    Status.WARN,
                    f"SMTP_HOST is not set in production: mail is written to {outbox} and "
                    "nobody receives a confirmation or reset link",
                    "Set SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD and MAIL_FROM.",
                )
            )
        elif not checks:
            checks.append(
                Check("mail", Status.OK, f"no SMTP_HOST: each mail is an .eml file in {outbox}")
            )
        return checks
    plain_remote = settings.smtp_tls is SmtpTls.NONE and not _is_loopback(settings.smtp_host)
    if plain_remote and settings.smtp_username:
        checks.append(
            Check(
                "mail",
                Status.FAIL if settings.is_production else Status.WARN,
                f"SMTP_TLS=none to {settings.smtp_host}: the SMTP login and every mail (with "
                "its link) cross the network in plain text",
                "Set SMTP_TLS=starttls (port 587) or SMTP_TLS=tls (port 465).",
            )
        )
    elif plain_remote and settings.is_production:
        checks.append(
            Check(
                "mail",
                Status.WARN,
                f"SMTP_TLS=none to {settings.smtp_host}: every mail (with its link) crosses the "
                "network in plain text",
                "Set SMTP_TLS=starttls (port 587) or SMTP_TLS=tls (port 465).",
            )
        )
    if not checks:
        checks.append(
            Check(
                "mail",
                Status.OK,
                f"SMTP {settings.smtp_host}:{settings.smtp_port_or_default} "
                f"({settings.smtp_tls}), links to {settings.site_url}",
            )
        )
    return checks


def check_password_settings(settings: Settings) -> list[Check]:
    """The password minimum: 8 unless lowered (to GoTrue's 6, say) outside production."""
    minimum = settings.password_min_length
    if minimum >= _DEFAULT_PASSWORD_MIN_LENGTH:
        return [Check("passwords", Status.OK, f"at least {minimum} characters")]
    return [
        Check(
            "passwords",
            Status.FAIL if settings.is_production else Status.WARN,
            f"PASSWORD_MIN_LENGTH={minimum}: passwords shorter than "
            f"{_DEFAULT_PASSWORD_MIN_LENGTH} characters are accepted (production refuses it)",
            f"Unset PASSWORD_MIN_LENGTH (or GOTRUE_PASSWORD_MIN_LENGTH) outside tests; the "
            f"default is {_DEFAULT_PASSWORD_MIN_LENGTH}.",
        )
    ]
