"""Refresh-token rotation is atomic across processes: two uvicorn processes, one database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from backend.app.core.settings import PROJECT_ROOT
from backend.tests.helpers import PASSWORD, unique_email


@contextmanager
def uvicorn_process(database_url: str, data_dir: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(data_dir)}
    process = subprocess.Popen(  # noqa: S603 -- our own interpreter and app
        [sys.executable, "-m", "uvicorn", "backend.app.main:app", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base_url}/health").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


class TestRotationAcrossProcesses:
    def test_concurrent_refreshes_on_two_processes_all_get_one_successor(
        self, database_url, tmp_path
    ):
        """Eight refreshes with one cookie, sent at once to two processes: every one succeeds,
        and all hand back the same new cookie (one rotation, the rest inside the reuse interval)."""
        with ExitStack() as stack:
            servers = [
                stack.enter_context(uvicorn_process(database_url, tmp_path)) for _ in range(2)
            ]
            with httpx.Client(base_url=servers[0]) as browser:
                csrf = browser.get("/auth/csrf").json()["csrfToken"]
                credentials = {"email": unique_email(), "password": PASSWORD}
                headers = {"X-CSRF-Token": csrf}
                browser.post("/auth/signup", json=credentials, headers=headers).raise_for_status()
                signin = browser.post("/auth/signin", json=credentials, headers=headers)
                csrf = signin.json()["csrfToken"]  # signin rotates the CSRF cookie
                cookies = {name: browser.cookies[name] for name in browser.cookies}

            def refresh(base_url: str) -> httpx.Response:
                return httpx.post(
                    f"{base_url}/auth/refresh", headers={"X-CSRF-Token": csrf}, cookies=cookies
                )

            with ThreadPoolExecutor(max_workers=8) as pool:
                responses = list(pool.map(refresh, servers * 4))

        assert [response.status_code for response in responses] == [200] * 8
        new_cookies = {response.cookies["sb_refresh_token"] for response in responses}
        assert len(new_cookies) == 1
        assert cookies["sb_refresh_token"] not in new_cookies
