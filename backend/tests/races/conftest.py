"""Fixtures for races at scale: two real uvicorn processes on one PostgreSQL database and Redis.

Both instances get the same explicit `SECRET_KEY` and `JWT_PRIVATE_KEY`, so a CSRF token, an
access token or a refresh-token successor issued by one is valid on the other, exactly as behind a
load balancer. They start one after the other (the second once the first answers /health), so the
suite does not depend on how concurrent start-ups share migrations or development keys.

The figures each test measures are collected in `race_figures`, written to `figures.json` under
the pytest temporary directory and shown in pytest's terminal summary.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import redis

from backend.app.core.settings import PROJECT_ROOT
from backend.tests.helpers import signing_key_pem
from backend.tests.scratch_postgres import scratch_postgres_database

# Redis database 12 is this suite's own: the rate limiter's keys (prefix `myideas`) land there, and
# only those are deleted afterwards. The shared Redis is never flushed.
REDIS_URL = "redis://127.0.0.1:6379/12"
_START_TIMEOUT_SECONDS = 30


class RaceServer:
    """One `python -m uvicorn backend.app.main:app` process on a free loopback port."""

    def __init__(self, name: str, environment: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 -- our own interpreter and app
            [
                sys.executable,
                "-m",
                "uvicorn",
                "backend.app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                # Longer than any test, so that idle keep-alive connections are never closed by
                # the server under a request that is being sent (see `http_client`).
                "--timeout-keep-alive",
                "300",
            ],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy in time:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """kill -9: no shutdown hook, no closing of database connections."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  [{self.name}] {line}" for line in text[-lines:])

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


class Cluster:
    """Two instances of the app behind no balancer: the tests choose the instance per request."""

    def __init__(self, first: RaceServer, second: RaceServer, database_url: str):
        self.first = first
        self.second = second
        self.servers = (first, second)
        self.database_url = database_url


class RaceFigures:
    """What the suite measured, for the closing note: one entry per test."""

    def __init__(self, path: Path):
        self.path = path
        self.values: dict[str, dict[str, Any]] = {}

    def record(self, name: str, **figures: Any) -> None:
        self.values[name] = figures
        self.path.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")
        print(f"\n[races] {name}: {self.summary(name)}")

    def summary(self, name: str) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.values[name].items())


_FIGURES = pytest.StashKey[RaceFigures]()


@pytest.fixture(scope="session")
def race_figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    figures = RaceFigures(tmp_path_factory.mktemp("races") / "figures.json")
    request.config.stash[_FIGURES] = figures
    return figures


@pytest.fixture(scope="module")
def races_database_url() -> Iterator[str]:
    """A PostgreSQL database of this suite's own, so its whole-table checks see only its rows."""
    with scratch_postgres_database("myideas_races") as url:
        yield url


@pytest.fixture(scope="module")
def races_environment(
    races_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The environment both instances share: database, Redis, keys, data folder."""
    environment = {
        **os.environ,
        "ENVIRONMENT": "development",
        "DATABASE_URL": races_database_url,
        "DATA_DIR": str(tmp_path_factory.mktemp("races-data")),
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": f"races-{uuid.uuid4().hex}",
        "JWT_PRIVATE_KEY": signing_key_pem(),
        # Every request of this suite comes from 127.0.0.1 and many sign-ins use one account:
        # the default limits (5/minute per account, 30/minute per address) would answer 429 to
        # the load itself. Rate limiting is not under test here.
        "RATE_LIMIT_SIGNIN_PER_ACCOUNT": "100000/minute",
        "RATE_LIMIT_SIGNIN_PER_ADDRESS": "100000/minute",
        "RATE_LIMIT_REFRESH_PER_ADDRESS": "100000/minute",
    }
    yield environment
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match="myideas*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def start_cluster(environment: dict[str, str], log_dir: Path, label: str) -> Cluster:
    """Start two instances one after the other; the caller stops them."""
    servers: list[RaceServer] = []
    try:
        for name in (f"{label}-a", f"{label}-b"):
            server = RaceServer(name, environment, log_dir / f"{name}.log")
            servers.append(server)
            server.wait_until_healthy()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return Cluster(servers[0], servers[1], environment["DATABASE_URL"])


@pytest.fixture(scope="module")
def cluster(
    races_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two instances, shared by the tests that leave both running."""
    started = start_cluster(races_environment, tmp_path_factory.mktemp("races-logs"), "shared")
    yield started
    for server in started.servers:
        server.stop()


@pytest.fixture
def own_cluster(races_environment: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    """Two instances of a test's own, for a test that kills one of them."""
    started = start_cluster(races_environment, tmp_path, "own")
    yield started
    for server in started.servers:
        server.stop()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    figures = config.stash.get(_FIGURES, None)
    if figures is None or not figures.values:
        return
    terminalreporter.section("races at scale")
    for name in figures.values:
        terminalreporter.write_line(f"{name}: {figures.summary(name)}")
    terminalreporter.write_line(f"figures: {figures.path}")
