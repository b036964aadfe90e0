"""The servers of a run: each in its own process, all started by uvicorn with the same options.

Ours, the bare FastAPI app and the peers differ only in the Python they run on (the peers have a
venv of their own, `bench.peers.environment`) and in the app factory; the uvicorn command line is
one (`UVICORN_OPTIONS`): one worker, access log off, log level warning, uvicorn's default loop and
HTTP parser (uvloop and httptools, from `uvicorn[standard]` in both venvs).

Also the scratch PostgreSQL databases: created on 127.0.0.1:5432 as `postgres` (trust auth) and
dropped afterwards, whatever happens in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from backend.tests.scratch_postgres import postgres_admin, scratch_postgres_database
from bench.cpu import process_seconds

__all__ = [
    "REPO",
    "UVICORN_OPTIONS",
    "postgres_database",
    "postgres_version",
    "serve",
    "server_pids",
    "settle",
    "work_dir",
]

REPO = Path(__file__).resolve().parents[1]
UVICORN_OPTIONS = ("--no-access-log", "--log-level", "warning")
_START_TIMEOUT_SECONDS = 60.0
# The servers now running (name → process), for `settle`.
_RUNNING: dict[str, subprocess.Popen[bytes]] = {}
_TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")
_SETTLE_WINDOW_SECONDS = 0.1
_SETTLE_TIMEOUT_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    """Whether `url` gets an HTTP answer, whatever its status: the app is serving."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 -- loopback URL built here
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error status is an answer: the app is serving
    except OSError:
        return False


@contextlib.contextmanager
def serve(
    name: str,
    app: str,
    *,
    python: Path,
    env: Mapping[str, str],
    ready_path: str = "/",
    log_dir: Path,
) -> Iterator[str]:
    """Run `uvicorn --factory <app>` on a free loopback port; yields its base URL once
    `ready_path` answers (uvicorn listens only after the app's start-up), stops it on exit.

    Its stderr goes to `<log_dir>/<name>.log`, shown when it does not start."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"{name}.log"
    command = [
        str(python),
        "-m",
        "uvicorn",
        "--factory",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *UVICORN_OPTIONS,
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    _RUNNING[name] = process
    try:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not _answers(base + ready_path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        del _RUNNING[name]
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_pids() -> list[int]:
    return [process.pid for process in _RUNNING.values()]


def settle() -> None:
    """Wait until every running server is idle (two windows of 0.1 s with at most one clock tick
    of CPU between them all).

    wrk stops sending when its time is up, but a server may still be working off what it
    accepted: 32 sign-ins queued on the hash threads are half a second of CPU on two cores. The
    next side must not pay for the previous one, and the verify timed in the runner must run
    beside an idle server."""
    deadline = time.monotonic() + _SETTLE_TIMEOUT_SECONDS
    quiet = 0
    before = sum(process_seconds(pid) for pid in server_pids())
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(_SETTLE_WINDOW_SECONDS)
        now = sum(process_seconds(pid) for pid in server_pids())
        quiet = quiet + 1 if now - before <= _TICK_SECONDS * 1.5 else 0
        before = now


def postgres_version() -> str:
    return asyncio.run(postgres_admin("SHOW server_version"))


def postgres_database(label: str) -> contextlib.AbstractContextManager[str]:
    """A scratch database (`bench_<label>_…`), dropped on exit; yields its URL."""
    return scratch_postgres_database(f"bench_{label}")


@contextlib.contextmanager
def work_dir() -> Iterator[Path]:
    """Where a run keeps its SQLite files, server logs and wrk's files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="myideas-bench-") as path:
        yield Path(path)
