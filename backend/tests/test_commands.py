"""The commands the README promises: `myideas migrate|doctor` and uvicorn from the repo root."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from backend.app.cli import cli
from backend.app.core.settings import PROJECT_ROOT, Settings, get_settings


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}


class TestCli:
    def test_migrate_then_doctor_report_a_healthy_database(self, tmp_path, monkeypatch):
        for name, value in _env(tmp_path).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("COLUMNS", "200")  # rich's table width: one row per line
        get_settings.cache_clear()
        runner = CliRunner()
        try:
            migrated = runner.invoke(cli, ["migrate"])
            doctor = runner.invoke(cli, ["doctor"])
        finally:
            get_settings.cache_clear()

        assert migrated.exit_code == 0, migrated.output
        assert "up to date" in migrated.output
        assert doctor.exit_code == 0, doctor.output
        assert re.search(r"ok\s+│ database\s+│ sqlite:///", doctor.output), doctor.output
        assert re.search(r"ok\s+│ migrations\s+│ at head", doctor.output), doctor.output
        assert "0 fail" in doctor.output
        assert (tmp_path / "c.db").exists()


class TestDoctor:
    """`myideas doctor`: a table or `--json`, exit 1 on any failed check, never a secret."""

    @staticmethod
    def run(tmp_path, monkeypatch, *args: str, **environment: str) -> Result:
        for name in Settings.model_fields:
            monkeypatch.delenv(name.upper(), raising=False)
        for name, value in (_env(tmp_path) | environment).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("COLUMNS", "200")
        return CliRunner().invoke(cli, ["doctor", *args])

    def test_json_is_a_list_of_checks(self, tmp_path, monkeypatch):
        result = self.run(tmp_path, monkeypatch, "--json")

        checks = json.loads(result.output)
        assert result.exit_code == 0, result.output
        assert all(set(check) == {"name", "status", "message", "fix"} for check in checks)
        assert {check["status"] for check in checks} <= {"ok", "warn"}
        assert [check["name"] for check in checks][:7] == [
            "settings",
            ".env",
            "cors",
            "api url",
            "cookies",
            "secrets",
            "logging",
        ]

    def test_any_failed_check_exits_1(self, tmp_path, monkeypatch):
        """The SPA opened at 127.0.0.1 while it calls localhost: two reds, one exit code."""
        result = self.run(tmp_path, monkeypatch, "--json", "--spa-origin", "http://127.0.0.1:5173")

        failed = {check["name"] for check in json.loads(result.output) if check["status"] == "fail"}
        assert result.exit_code == 1
        assert failed == {"cookies"}

    def test_port_mismatch_is_reported_in_the_table(self, tmp_path, monkeypatch):
        result = self.run(tmp_path, monkeypatch, "--port", "9000")

        assert result.exit_code == 1
        assert re.search(r"fail\s+│ api url\s+│ the SPA calls port 8000", result.output)
        assert "1 fail" in result.output

    def test_refused_production_configuration_is_a_report_not_a_traceback(
        self, tmp_path, monkeypatch
    ):
        result = self.run(tmp_path, monkeypatch, "--json", ENVIRONMENT="production")

        checks = json.loads(result.output)
        assert result.exit_code == 1
        assert isinstance(result.exception, SystemExit)
        assert checks[0]["name"] == "settings"
        assert checks[0]["status"] == "fail"
        assert any("JWT_PRIVATE_KEY is missing" in check["message"] for check in checks)

    @pytest.mark.parametrize("output", ["table", "json"])
    def test_no_secret_value_is_printed(self, tmp_path, monkeypatch, output):
        secrets = {
            "SECRET_KEY": "secret-key-value-1234567890-abcdefghijkl",
            "JWT_PRIVATE_KEY": "change-me",
            "SUPABASE_ANON_KEY": "anon-key-value-0987654321",
            "SUPABASE_SERVICE_ROLE_KEY": "service-role-value-5555555555",
            "SUPABASE_JWT_SECRET": "jwt-secret-value-7777777777",
        }
        url_password = "db-password-value-3333"
        result = self.run(
            tmp_path,
            monkeypatch,
            *(["--json"] if output == "json" else []),
            "--timeout",
            "0.5",
            ENVIRONMENT="production",
            AUTH_PROVIDER="supabase",
            SUPABASE_URL="http://127.0.0.1:9",
            DATABASE_URL=f"postgresql://postgres:{url_password}@127.0.0.1:9/x",
            REDIS_URL=f"redis://:{url_password}@127.0.0.1:9/0",
            **secrets,
        )

        assert result.exit_code == 1
        assert "[Errno 111]" in result.output  # the driver's words, brackets and all
        assert "SECRET_KEY" in result.output  # named...
        for value in [*secrets.values(), url_password]:
            assert value not in result.output  # ...never shown


class TestUvicornFromRepositoryRoot:
    def test_course_command_serves_the_app(self, tmp_path):
        """`uvicorn backend.app.main:app --port …` from the repository root, no .env: /health ok."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(  # noqa: S603 -- our own interpreter
            [sys.executable, "-m", "uvicorn", "backend.app.main:app", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            body = None
            deadline = time.monotonic() + 20
            while body is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as response:
                        body = response.read()
                except OSError:
                    time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=10)

        assert body is not None
        assert json.loads(body)["database"] == "ok"
