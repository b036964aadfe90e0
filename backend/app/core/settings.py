"""The one settings class of the service.

Values come from the environment, then from the `.env` file at the repository root. The root is
found from this file's location, never from the working directory, so `uvicorn` started from
anywhere reads the same configuration (the failure this avoids: a second `.env` in a sub-folder
silently winning for one process).
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "PROJECT_ROOT",
    "AuthProvider",
    "Environment",
    "Settings",
    "SmtpTls",
    "get_settings",
    "is_placeholder_secret",
]

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
_PLACEHOLDERS = {"", "change-me", "changeme", "secret", "placeholder", "your-secret-here"}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class AuthProvider(StrEnum):
    EMBEDDED = "embedded"
    SUPABASE = "supabase"


class SmtpTls(StrEnum):
    """How the SMTP connection is protected: `starttls` upgrades a plain connection (and refuses
    a server that cannot), `tls` speaks TLS from the first byte (port 465), `none` is plain text."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


_SMTP_DEFAULT_PORTS = {SmtpTls.NONE: 25, SmtpTls.STARTTLS: 587, SmtpTls.TLS: 465}
# The password policy's minimum length (identity/passwords.py's MIN_PASSWORD_LENGTH: core does not
# import identity). GoTrue's own default is 6 and it raises lower values to 6, hence the floor.
_PASSWORD_MIN_LENGTH = 8
_GOTRUE_PASSWORD_FLOOR = 6


class Settings(BaseSettings):
    """Everything that differs between a laptop and production (README, "Configuration")."""

    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = Environment.DEVELOPMENT
    auth_provider: AuthProvider = AuthProvider.EMBEDDED
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    # How long a request waits for the database (connect, pool, lock, statement) before a 503.
    database_timeout_seconds: float = Field(default=5.0, gt=0)
    database_pool_size: int = Field(default=10, ge=1, le=100)
    redis_url: str | None = None
    # Request bodies above this many bytes are refused with 413 before they are read.
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    # The proxies whose X-Forwarded-For is believed (uvicorn's option, read from the same variable);
    # unset: the client address is the socket's.
    forwarded_allow_ips: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default=["http://localhost:5173", "http://127.0.0.1:5173"]
    )
    access_token_ttl_seconds: int = Field(default=900, gt=0)
    # The absolute session lifetime: re-authentication after 14 days, however active the user.
    session_ttl_seconds: int = Field(default=14 * 24 * 3600, gt=0)
    # The idle timeout: a session with no refresh (and no sign-in) for this long is over. The SPA
    # refreshes at least every access-token lifetime while open, so 7 days means "not used for a
    # week" (ASVS 5.0 V7.3.1; the absolute limit above is V7.3.2).
    session_idle_timeout_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    refresh_reuse_interval_seconds: int = Field(default=10, ge=0)
    rate_limit_signin_per_account: str = "5/minute"
    rate_limit_signin_per_address: str = "30/minute"
    # GoTrue's default for its token endpoint: 150 per 5 minutes per client address.
    rate_limit_refresh_per_address: str = "150/5minutes"
    # Mails of the lifecycle: one count per recipient (the normalized address, known or not)
    # and one per client address, across confirmation, resend, forgot and email change.
    rate_limit_email_per_recipient: str = "5/hour"
    rate_limit_email_per_address: str = "30/hour"
    password_reset_ttl_seconds: int = Field(default=3600, gt=0)
    email_confirm_ttl_seconds: int = Field(default=86400, gt=0)
    # Off: a sign-up is confirmed at once (GoTrue's autoconfirm) and no mail is sent. On: sign-up
    # (on /auth and on /auth/v1 alike) mails a confirmation link and opens no session.
    email_confirmation_required: bool = False
    # The same switch under GoTrue's name, inverted: GOTRUE_MAILER_AUTOCONFIRM=false is
    # EMAIL_CONFIRMATION_REQUIRED=true. Either may be set; both, only if they agree.
    gotrue_mailer_autoconfirm: bool | None = None
    # GoTrue's GOTRUE_DISABLE_SIGNUP, for /auth/v1: its /signup, and /otp for a new address, answer
    # 422 `signup_disabled`; /invite and the admin API still create users. /auth's sign-up is the
    # app's own contract (docs/account-lifecycle.md) and is not affected.
    gotrue_disable_signup: bool = False
    # GoTrue's GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION: PUT /auth/v1/user with a
    # new password needs the `nonce` that GET /auth/v1/reauthenticate mails.
    gotrue_security_update_password_require_reauthentication: bool = False
    # GoTrue's GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED (its default, on), for /auth/v1 only:
    # PUT /auth/v1/user {email} mails a link and code to each address, and (autoconfirm off) the
    # change needs both, so a stolen access token alone cannot move the account to another
    # mailbox. Off: one link, to the new address, and a notice to the old one. /auth's own email
    # change is the app's contract (one link, a notice) whatever this says.
    gotrue_mailer_secure_email_change_enabled: bool = True
    # The shortest password accepted by both APIs. Below 8 only outside production (the doctor
    # warns); GoTrue's name is accepted too.
    password_min_length: int = Field(
        default=_PASSWORD_MIN_LENGTH,
        ge=_GOTRUE_PASSWORD_FLOOR,
        le=1024,
        validation_alias=AliasChoices("password_min_length", "gotrue_password_min_length"),
    )
    jwt_issuer: str = "http://localhost:8000/auth/v1"
    # PEM of the EC P-256 key that signs access tokens; generated into data_dir in development.
    jwt_private_key: SecretStr | None = None
    # Signs CSRF tokens and derives rotated refresh tokens; generated into data_dir in development.
    secret_key: SecretStr | None = None
    supabase_url: str | None = None
    supabase_anon_key: SecretStr | None = None
    supabase_service_role_key: SecretStr | None = None
    supabase_jwt_secret: SecretStr | None = None
    # The embedded provider also serves GoTrue's HTTP API under /auth/v1 (keys: the two above).
    gotrue_api_enabled: bool = False
    # Mail (backend/app/mail). No SMTP_HOST: each message is an .eml file under DATA_DIR/outbox.
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, gt=0, lt=65536)  # unset: by SMTP_TLS
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: SmtpTls = SmtpTls.STARTTLS
    # The longest one SMTP step (connect, a command, the data) may take before a retry later.
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    mail_from: str = "My Ideas <no-reply@localhost>"
    mail_product_name: str = "My Ideas"
    # Where the links in mails open the SPA; unset: the first CORS origin.
    site_url: str = ""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _refuse_wildcard(cls, origins: list[str]) -> list[str]:
        # Credentials are always on (the refresh cookie), and a wildcard with credentials would let
        # any site read authenticated responses: refuse to start rather than guess.
        if "*" in origins:
            raise ValueError("CORS_ORIGINS may not contain '*': this API sends credentials")
        return origins

    @field_validator("site_url")
    @classmethod
    def _strip_site_url(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _one_confirmation_switch(self) -> Settings:
        autoconfirm = self.gotrue_mailer_autoconfirm
        if autoconfirm is None:
            return self
        if (
            "email_confirmation_required" in self.model_fields_set
            and self.email_confirmation_required == autoconfirm
        ):
            raise ValueError(
                "EMAIL_CONFIRMATION_REQUIRED and GOTRUE_MAILER_AUTOCONFIRM disagree: they are one "
                "switch (autoconfirm = not confirmation required); set one of them"
            )
        self.email_confirmation_required = not autoconfirm
        return self

    @model_validator(mode="after")
    def _fill_defaults_and_check_production(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'myideas.db'}"
        if not self.site_url and self.cors_origins:
            self.site_url = self.cors_origins[0]
        if self.auth_provider is AuthProvider.SUPABASE:
            missing = [
                name.upper()
                for name in ("supabase_url", "supabase_anon_key", "supabase_service_role_key")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(
                    f"AUTH_PROVIDER=supabase needs {', '.join(missing)}: the project's URL and "
                    "its anon and service-role keys (Supabase dashboard, Project Settings, API)"
                )
        if self.environment is Environment.PRODUCTION:
            for name in ("jwt_private_key", "secret_key"):
                secret = getattr(self, name)
                if is_placeholder_secret(secret):
                    raise ValueError(f"{name.upper()} must be set to a real secret in production")
            if self.password_min_length < _PASSWORD_MIN_LENGTH:
                raise ValueError(
                    f"PASSWORD_MIN_LENGTH below {_PASSWORD_MIN_LENGTH} is for development only"
                )
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def smtp_port_or_default(self) -> int:
        return self.smtp_port or _SMTP_DEFAULT_PORTS[self.smtp_tls]


def is_placeholder_secret(secret: SecretStr | None) -> bool:
    """Missing, or a value from an example file: what production refuses (and the doctor names)."""
    return secret is None or secret.get_secret_value().strip().lower() in _PLACEHOLDERS


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once; tests pass their own `Settings` to `create_app`."""
    return Settings()
