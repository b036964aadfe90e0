"""The commands the README promises: `myideas migrate|doctor` and uvicorn from the repo root."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from backend.app.cli import cli
from backend.app.core.settings import PROJECT_ROOT, get_settings


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}


class TestCli:
    def test_migrate_then_doctor_report_a_healthy_database(self, tmp_path, monkeypatch):
        for name, value in _env(tmp_path).items():
            monkeypatch.setenv(name, value)
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
        assert "database check: ok" in doctor.output
        assert (tmp_path / "c.db").exists()


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
