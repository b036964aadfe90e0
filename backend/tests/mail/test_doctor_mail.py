"""The doctor's mail checks: the configuration (SITE_URL, MAIL_FROM, TLS) and the SMTP server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from backend.app.core.settings import Settings
from backend.app.doctor import Status, check_mail, check_smtp, log_startup_checks
from backend.tests.helpers import signing_key_pem
from backend.tests.mail.smtp_server import PASSWORD, USERNAME

SPA = "https://app.example.com"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path, "cors_origins": [SPA]} | overrides
    return Settings(_env_file=None, **values)


def _production(tmp_path: Path, **overrides) -> Settings:
    return _settings(
        tmp_path,
        environment="production",
        jwt_private_key=signing_key_pem(),
        secret_key="s" * 40,
        **overrides,
    )


def _statuses(checks) -> list[Status]:
    return [check.status for check in checks]


class TestCheckMail:
    def test_development_without_smtp_says_where_the_eml_files_are(self, tmp_path):
        """`make run`'s default is healthy and says where to look."""
        (check,) = check_mail(_settings(tmp_path))

        assert check.status is Status.OK
        assert str(tmp_path / "outbox") in check.message

    def test_site_url_defaults_to_the_first_cors_origin(self, tmp_path):
        """The SPA a link opens is the one the API already serves."""
        settings = _settings(tmp_path, cors_origins=[SPA, "http://localhost:5173"])

        assert settings.site_url == SPA

    def test_http_site_url_in_production_is_red(self, tmp_path):
        """Tokens in links over plain HTTP: refused in production."""
        checks = check_mail(_production(tmp_path, site_url="http://app.example.com"))

        assert Status.FAIL in _statuses(checks)
        assert "plain HTTP" in checks[0].message

    def test_http_loopback_site_url_in_production_is_a_warning(self, tmp_path):
        """A production trial on one machine: the link never leaves it."""
        checks = check_mail(
            _production(tmp_path, cors_origins=["http://localhost:5173"], smtp_host="127.0.0.1")
        )

        assert _statuses(checks) == [Status.WARN]
        assert "local address" in checks[0].message

    def test_site_url_that_is_no_url_is_red(self, tmp_path):
        """A link base without a scheme and host leads nowhere."""
        checks = check_mail(_settings(tmp_path, site_url="app.example.com"))

        assert _statuses(checks) == [Status.FAIL]

    def test_site_url_outside_cors_origins_is_a_warning(self, tmp_path):
        """The SPA a link opens must be allowed to call the API."""
        checks = check_mail(_settings(tmp_path, site_url="https://other.example.com"))

        assert _statuses(checks) == [Status.WARN]

    def test_mail_from_without_an_address_is_red(self, tmp_path):
        """No address, no mail."""
        checks = check_mail(_settings(tmp_path, mail_from="My Ideas"))

        assert _statuses(checks) == [Status.FAIL]

    def test_production_without_smtp_is_a_warning(self, tmp_path):
        """Files in production reach nobody."""
        checks = check_mail(_production(tmp_path))

        assert _statuses(checks) == [Status.WARN]

    @pytest.mark.parametrize(
        ("environment", "status"), [("development", "warn"), ("production", "fail")]
    )
    def test_plain_text_login_to_a_remote_server_is_flagged(self, tmp_path, environment, status):
        """SMTP_TLS=none with a login off loopback sends the password in clear."""
        make = _production if environment == "production" else _settings
        settings = make(
            tmp_path,
            smtp_host="smtp.example.com",
            smtp_tls="none",
            smtp_username="u",
            smtp_password=PASSWORD,
        )

        checks = check_mail(settings)

        assert _statuses(checks) == [Status(status)]
        assert PASSWORD not in checks[0].message

    def test_starttls_to_a_remote_server_in_production_is_ok(self, tmp_path):
        """The production shape: STARTTLS, login, https links."""
        settings = _production(
            tmp_path, smtp_host="smtp.example.com", smtp_username="u", smtp_password=PASSWORD
        )

        (check,) = check_mail(settings)

        assert check.status is Status.OK
        assert "smtp.example.com:587 (starttls)" in check.message

    def test_http_site_url_stops_a_production_start(self, tmp_path, caplog):
        """A failed mail check is a failed configuration check like any other."""
        from backend.app.doctor import ConfigurationRefused

        caplog.set_level(logging.INFO, logger="backend.app.doctor")
        settings = _production(tmp_path, site_url="http://app.example.com")

        with pytest.raises(ConfigurationRefused, match="plain HTTP"):
            log_startup_checks(settings, env_file=tmp_path / ".env")


class TestCheckSmtp:
    async def test_without_smtp_host_there_is_nothing_to_reach(self, tmp_path):
        """No server configured: no row."""
        assert await check_smtp(_settings(tmp_path)) == []

    async def test_server_that_answers_starttls_and_login_is_ok(
        self, tmp_path, make_smtp_server, trusted_ca
    ):
        """STARTTLS with a trusted certificate and an accepted login; nothing is sent."""
        server = make_smtp_server(starttls=True, login=True)
        settings = _settings(
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_username=USERNAME,
            smtp_password=PASSWORD,
        )

        (check,) = await check_smtp(settings)

        assert check.status is Status.OK
        assert "login accepted" in check.message
        assert server.handler.commands == []

    @pytest.mark.parametrize("problem", ["down", "no starttls", "wrong password"])
    async def test_server_that_cannot_be_used_is_red(
        self, tmp_path, make_smtp_server, trusted_ca, problem
    ):
        """Down, without the STARTTLS it must offer, or refusing the login: red, no secret."""
        server = {
            "down": lambda: make_smtp_server(started=False),
            "no starttls": lambda: make_smtp_server(),
            "wrong password": lambda: make_smtp_server(starttls=True, login=True),
        }[problem]()
        password = "wrong-password-value-1357" if problem == "wrong password" else PASSWORD
        settings = _settings(
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_username=USERNAME,
            smtp_password=password,
        )

        (check,) = await check_smtp(settings, timeout_seconds=1)

        assert check.status is Status.FAIL
        assert password not in check.message + check.fix
