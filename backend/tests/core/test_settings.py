"""Settings: one `.env` at the repository root, whatever the working directory; safe production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.app.core.settings import PROJECT_ROOT, Settings


class TestSettings:
    def test_dotenv_at_repository_root_is_read_from_any_working_directory(self, tmp_path):
        """A process started in another folder still reads the repository's `.env`."""
        env_file = PROJECT_ROOT / ".env"
        if env_file.exists():
            pytest.fail(".env exists in the checkout; this test would overwrite it")
        env_file.write_text("ACCESS_TOKEN_TTL_SECONDS=123\n")
        try:
            probe = (
                "from backend.app.core.settings import Settings;"
                "print(Settings().access_token_ttl_seconds)"
            )
            environment = {k: v for k, v in os.environ.items() if k != "ACCESS_TOKEN_TTL_SECONDS"}
            environment["PYTHONPATH"] = str(PROJECT_ROOT)
            result = subprocess.run(  # noqa: S603 -- our own interpreter and code
                [sys.executable, "-c", probe],
                cwd=tmp_path,
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            env_file.unlink()

        assert result.stdout.strip() == "123"

    def test_defaults_match_the_design(self):
        settings = Settings(_env_file=None)

        assert settings.cors_origins == ["http://localhost:5173", "http://127.0.0.1:5173"]
        assert settings.access_token_ttl_seconds == 900
        assert settings.session_ttl_seconds == 1_209_600
        assert settings.refresh_reuse_interval_seconds == 10
        assert settings.rate_limit_signin_per_account == "5/minute"
        assert settings.rate_limit_signin_per_address == "30/minute"
        assert settings.database_url.startswith("sqlite:///")
        assert settings.database_url.endswith("/data/myideas.db")

    def test_cors_origins_parse_from_comma_separated_env(self, monkeypatch):
        monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example/")

        settings = Settings(_env_file=None)

        assert settings.cors_origins == ["https://a.example", "https://b.example"]

    def test_wildcard_cors_origin_is_refused(self, monkeypatch):
        """`*` with credentials would let any site read authenticated responses."""
        monkeypatch.setenv("CORS_ORIGINS", "*")

        with pytest.raises(ValidationError, match="may not contain"):
            Settings(_env_file=None)

    @pytest.mark.parametrize("secret_key", [None, "change-me", ""])
    def test_production_refuses_missing_or_placeholder_secrets(self, secret_key):
        with pytest.raises(ValidationError, match="must be set to a real secret"):
            Settings(
                _env_file=None,
                environment="production",
                jwt_private_key="-----BEGIN PRIVATE KEY-----...",
                secret_key=secret_key,
            )

    def test_production_cookie_policy_is_secure(self, tmp_path: Path):
        """Secure is forced in production, whatever else is configured."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from backend.app.services import start_services

        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        settings = Settings(
            _env_file=None,
            environment="production",
            jwt_private_key=pem.decode(),
            secret_key="a real secret of enough length for tests",
            database_url=f"sqlite:///{tmp_path / 'prod.db'}",
            data_dir=tmp_path,
        )

        import asyncio

        async def policy_secure() -> bool:
            services = await start_services(settings)
            try:
                return services.cookies.secure
            finally:
                await services.close()

        assert asyncio.run(policy_secure()) is True
        assert not (tmp_path / "jwt_signing_key.pem").exists()  # no generated key in production
