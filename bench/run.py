"""Benchmarks, each against its baseline in the same run; prints and publishes ratios.

1. Requests/s of `GET /auth/me` (bearer + profile read) and `GET /items` against a bare FastAPI
   JSON route, on the same uvicorn worker, measured by wrk on loopback, interleaved rounds.
2. Mean time of one sign-in (the whole embedded provider path) against one bare argon2id hash
   with the same parameters, in one process.
3. Mean time of a sign-in with an unknown email against one with a wrong password (the
   anti-enumeration dummy hash should make them alike), and both latency distributions
   (deciles), which should overlap.

Usage: `make bench` (or `.venv/bin/python -m bench.run [--seconds 10] [--rounds 3]`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
PASSWORD = "correct horse battery staple"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(
    url: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(  # noqa: S310 -- loopback URL built here
        url, data=data, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310 -- loopback only
        return json.loads(response.read() or b"{}"), response.headers.get_all("Set-Cookie") or []


def _sign_in(base: str) -> str:
    """Sign up and in over HTTP like a browser; returns an access token."""
    with urllib.request.urlopen(f"{base}/auth/csrf") as response:  # noqa: S310 -- loopback
        csrf = json.loads(response.read())["csrfToken"]
        cookie = response.headers["Set-Cookie"].split(";")[0]
    headers = {"X-CSRF-Token": csrf, "Cookie": cookie}
    email = f"bench-{time.time_ns()}@example.com"
    _post(
        f"{base}/auth/signup",
        {"email": email, "password": PASSWORD, "profile": {"displayName": "Bench"}},
        headers,
    )
    body, _ = _post(f"{base}/auth/signin", {"email": email, "password": PASSWORD}, headers)
    token = body["accessToken"]
    for title in ("one", "two", "three"):
        _post(f"{base}/items", {"title": title}, {"Authorization": f"Bearer {token}"})
    return str(token)


def _wrk(url: str, seconds: int, headers: dict[str, str]) -> float:
    command = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed responses")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"wrk printed no rate:\n{output}")
    return float(match.group(1))


def bench_routes(seconds: int, rounds: int, database_url: str | None) -> dict[str, list[float]]:
    """One server on `database_url` (default: a new SQLite file); wrk on each route in turn."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        environment = {**os.environ, "DATABASE_URL": database_url or f"sqlite:///{data_dir}/b.db"}
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.server", str(port), data_dir], env=environment
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/health")  # noqa: S310 -- loopback
                    break
                except OSError:
                    time.sleep(0.1)
            token = _sign_in(base)
            auth = {"Authorization": f"Bearer {token}"}
            routes = {
                "bare": ("/bench/bare", {}),
                "me": ("/auth/me", auth),
                "items": ("/items", auth),
            }
            _wrk(f"{base}/bench/bare", 2, {})  # warm-up
            rates: dict[str, list[float]] = {name: [] for name in routes}
            for _ in range(rounds):  # interleaved, so drift hits every route alike
                for name, (path, headers) in routes.items():
                    rates[name].append(_wrk(base + path, seconds, headers))
            return rates
        finally:
            server.terminate()
            server.wait(timeout=10)


async def bench_sign_in(samples: int) -> dict[str, float]:
    from backend.app.core.errors import InvalidCredentials
    from backend.app.core.settings import Settings
    from backend.app.services import start_services

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(_env_file=None, data_dir=Path(data_dir))
        services = await start_services(settings)
        try:
            identity = services.identity
            email = f"bench-{time.time_ns()}@example.com"
            await identity.sign_up(email=email, password=PASSWORD, display_name=None)
            hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
            timings: dict[str, list[float]] = {"hash": [], "signin": [], "unknown": [], "wrong": []}
            for _ in range(samples):  # interleaved again
                start = time.perf_counter()
                hasher.hash(PASSWORD)
                timings["hash"].append(time.perf_counter() - start)
                start = time.perf_counter()
                await identity.sign_in_with_password(email=email, password=PASSWORD)
                timings["signin"].append(time.perf_counter() - start)
                for name, login in (("unknown", f"x{email}"), ("wrong", email)):
                    start = time.perf_counter()
                    with contextlib.suppress(InvalidCredentials):
                        await identity.sign_in_with_password(email=login, password="wrong pw!")
                    timings[name].append(time.perf_counter() - start)
            means = {name: statistics.mean(values) for name, values in timings.items()}
            # The deciles of both failure paths: an attacker compares distributions, not means.
            deciles = {
                f"{name}_p{10 * (i + 1)}": value
                for name in ("wrong", "unknown")
                for i, value in enumerate(statistics.quantiles(timings[name], n=10))
            }
            return means | deciles
        finally:
            await services.close()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A scratch database on the machine's PostgreSQL, dropped afterwards."""
    import asyncpg

    name = f"myideas_bench_{time.time_ns()}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per route")
    parser.add_argument("--samples", type=int, default=30, help="sign-ins timed")
    args = parser.parse_args()

    rates = {"SQLite": bench_routes(args.seconds, args.rounds, None)}
    with postgres_database() as url:
        rates["PostgreSQL"] = bench_routes(args.seconds, args.rounds, url)
    median = {
        db: {name: statistics.median(values) for name, values in routes.items()}
        for db, routes in rates.items()
    }
    times = asyncio.run(bench_sign_in(args.samples))

    lines = [
        "# Benchmark results",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, one uvicorn worker, wrk -t1 -c32 on loopback; "
        f"{args.rounds} interleaved rounds of {args.seconds} s (median shown).",
        "Command: `make bench`.",
        "",
        "| route (same server, same run) | SQLite req/s | share of bare "
        "| PostgreSQL req/s | share of bare |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "bare": "bare FastAPI JSON route (baseline)",
        "me": "`GET /auth/me` (bearer + ES256 check + profile read)",
        "items": "`GET /items` (bearer + 3 items read)",
    }
    for name, label in labels.items():
        cells = [
            f"{median[db][name]:,.0f} | {median[db][name] / median[db]['bare']:.2f}"
            for db in ("SQLite", "PostgreSQL")
        ]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += [
        "",
        "| operation (same process, interleaved) | mean | ratio |",
        "|---|---|---|",
        f"| one argon2id hash, m=19 MiB t=2 p=1 (baseline) | {times['hash'] * 1000:.1f} ms "
        "| 1.00 |",
        f"| one successful sign-in (embedded provider) | {times['signin'] * 1000:.1f} ms | "
        f"{times['signin'] / times['hash']:.2f} |",
        f"| sign-in, wrong password (baseline for the next row) | {times['wrong'] * 1000:.1f} ms "
        f"| 1.00 |",
        f"| sign-in, unknown email | {times['unknown'] * 1000:.1f} ms | "
        f"{times['unknown'] / times['wrong']:.2f} |",
        "",
        "| sign-in failure latency | p10 | p30 | p50 | p70 | p90 |",
        "|---|---|---|---|---|---|",
        *(
            f"| {label} | "
            + " | ".join(f"{times[f'{name}_p{p}'] * 1000:.1f} ms" for p in (10, 30, 50, 70, 90))
            + " |"
            for name, label in (("wrong", "wrong password"), ("unknown", "unknown email"))
        ),
        "",
        "Raw requests/s per round: " + json.dumps(rates),
        "",
    ]
    text = "\n".join(lines)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
