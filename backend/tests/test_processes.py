"""Real processes on one database: rotation, start-up and development keys across instances."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.app.core.settings import PROJECT_ROOT
from backend.tests.helpers import PASSWORD, free_port, unique_email

README_COMMAND = [sys.executable, "-m", "uvicorn", "backend.app.main:app"]
MYIDEAS_SERVE = [sys.executable, "-c", "from backend.app.cli import main; main()", "serve"]
# Variables of the outer environment that would change what these processes do.
_OWN_SETTINGS = ("JWT_PRIVATE_KEY", "SECRET_KEY", "REDIS_URL", "FORWARDED_ALLOW_IPS")


@contextmanager
def app_processes(
    count: int, database_url: str, data_dir: Path, *, command: list[str] = README_COMMAND, **env
) -> Iterator[list[str]]:
    """Start `count` app processes at the same moment; yields their base URLs once all answer.

    Raises:
        AssertionError: a process exited or did not answer; its stderr is in the message.
    """
    environment = {k: v for k, v in os.environ.items() if k not in _OWN_SETTINGS}
    environment |= {"DATABASE_URL": database_url, "DATA_DIR": str(data_dir), **env}
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(  # noqa: S603 -- our own interpreter and app
            [*command, "--port", str(port), *(["--spa-port", "0"] if "serve" in command else [])],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for process, url in zip(processes, urls, strict=True):
            _wait_until_healthy(process, url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
            assert process.stderr is not None
            process.stderr.close()


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            raise AssertionError(f"the process exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer /health in time")


def _signed_in(base_url: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Sign up and in like a browser: (cookies, csrf token)."""
    with httpx.Client(base_url=base_url) as browser:
        csrf = browser.get("/auth/csrf").json()["csrfToken"]
        credentials = {"email": unique_email(), "password": PASSWORD}
        headers = {"X-CSRF-Token": csrf}
        browser.post("/auth/signup", json=credentials, headers=headers).raise_for_status()
        signin = browser.post("/auth/signin", json=credentials, headers=headers)
        signin.raise_for_status()
        session: dict[str, Any] = signin.json()
        return {name: browser.cookies[name] for name in browser.cookies}, session


class TestRotationAcrossProcesses:
    def test_concurrent_refreshes_on_two_processes_all_get_one_successor(
        self, database_url, tmp_path
    ):
        """Eight refreshes with one cookie, sent at once to two processes: every one succeeds,
        and all hand back the same new cookie (one rotation, the rest inside the reuse interval)."""
        with app_processes(2, database_url, tmp_path) as servers:
            cookies, session = _signed_in(servers[0])

            def refresh(base_url: str) -> httpx.Response:
                return httpx.post(
                    f"{base_url}/auth/refresh",
                    headers={"X-CSRF-Token": session["csrfToken"]},
                    cookies=cookies,
                )

            with ThreadPoolExecutor(max_workers=8) as pool:
                responses = list(pool.map(refresh, servers * 4))

        assert [response.status_code for response in responses] == [200] * 8
        new_cookies = {response.cookies["sb_refresh_token"] for response in responses}
        assert len(new_cookies) == 1
        assert cookies["sb_refresh_token"] not in new_cookies


class TestStartingTogether:
    """Several instances started at the same moment on nothing prepared all come up."""

    @pytest.mark.postgres
    def test_three_instances_on_a_fresh_postgres_database_all_serve(
        self, fresh_postgres_url, tmp_path
    ):
        with app_processes(3, fresh_postgres_url, tmp_path) as servers:
            statuses = [httpx.get(f"{url}/health").status_code for url in servers]

        assert statuses == [200, 200, 200]

    def test_four_instances_on_a_fresh_sqlite_file_all_serve(self, tmp_path):
        with app_processes(4, f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path) as servers:
            statuses = [httpx.get(f"{url}/health").status_code for url in servers]

        assert statuses == [200, 200, 200, 200]

    def test_workers_on_an_empty_data_folder_agree_on_the_development_keys(self, tmp_path):
        """Four processes generate the keys at once: a token and a CSRF token issued by one are
        accepted by every other."""
        data_dir = tmp_path / "empty"
        with app_processes(4, f"sqlite:///{tmp_path / 'k.db'}", data_dir) as servers:
            _, session = _signed_in(servers[0])
            bearer = {"Authorization": f"Bearer {session['accessToken']}"}
            me = [httpx.get(f"{url}/auth/me", headers=bearer).status_code for url in servers]
            with httpx.Client(base_url=servers[1]) as browser:
                csrf = browser.get("/auth/csrf").json()["csrfToken"]
                signup = httpx.post(
                    f"{servers[2]}/auth/signup",
                    json={"email": unique_email(), "password": PASSWORD},
                    headers={"X-CSRF-Token": csrf},
                    cookies=dict(browser.cookies),
                )

        assert me == [200, 200, 200, 200]
        assert signup.status_code == 201, signup.text
        # One key of each, whole, and no candidate left behind.
        assert sorted(path.name for path in data_dir.iterdir()) == [
            "jwt_signing_key.pem",
            "secret_key",
        ]
        assert (data_dir / "jwt_signing_key.pem").read_bytes().startswith(b"-----BEGIN")


@pytest.mark.parametrize("command", [README_COMMAND, MYIDEAS_SERVE], ids=["uvicorn", "serve"])
class TestClientAddress:
    """X-Forwarded-For is believed only from the proxies FORWARDED_ALLOW_IPS names."""

    def test_forwarded_for_from_loopback_does_not_reset_the_address_limit(self, tmp_path, command):
        statuses = self._signins_with_rotating_forwarded_for(tmp_path, command)

        assert statuses == [401, 401, 401, 429]

    def test_forwarded_for_from_a_named_proxy_is_believed(self, tmp_path, command):
        statuses = self._signins_with_rotating_forwarded_for(
            tmp_path, command, FORWARDED_ALLOW_IPS="127.0.0.1"
        )

        assert statuses == [401, 401, 401, 401]

    @staticmethod
    def _signins_with_rotating_forwarded_for(
        tmp_path: Path, command: list[str], **env: str
    ) -> list[int]:
        database_url = f"sqlite:///{tmp_path / 'a.db'}"
        limits = {"RATE_LIMIT_SIGNIN_PER_ADDRESS": "3/minute"}
        with app_processes(1, database_url, tmp_path, command=command, **limits, **env) as [url]:
            statuses = []
            for number in range(4):
                with httpx.Client(base_url=url) as browser:
                    csrf = browser.get("/auth/csrf").json()["csrfToken"]
                    response = browser.post(
                        "/auth/signin",
                        json={"email": unique_email(), "password": PASSWORD},
                        headers={"X-CSRF-Token": csrf, "X-Forwarded-For": f"203.0.113.{number}"},
                    )
                statuses.append(response.status_code)
        return statuses
