"""Benchmarks of issue 9: each scenario against its baseline, in the same run, alternating.

For each database (SQLite, then PostgreSQL in a scratch database), our app is served with 64
seeded users; each scenario then starts what it compares with (a bare FastAPI app, fastapi-users,
AuthX, servers with 10³ and 10⁶ users), measures both sides in alternating rounds with wrk, and
reports the median ratio and its spread. Results: `bench/results/latest.{md,json,png}`.

Usage: `make bench`, or `.venv/bin/python -m bench.run [--seconds 5] [--rounds 3]
[--only bare,fastapi-users,protected,refresh,signin,scale] [--databases sqlite,postgres]`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, scenarios, seed, wrk
from bench.measure import RowResult, summarize
from bench.peers.environment import ensure_peers, installed_versions
from bench.scenarios import POSTGRES, SQLITE, Context, Measured
from bench.server import RAISED_LIMITS
from bench.servers import UVICORN_OPTIONS, postgres_database, postgres_version, work_dir

DATABASES = {"sqlite": SQLITE, "postgres": POSTGRES}
_MAIN_VERSIONS = (
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "sqlalchemy",
    "asyncpg",
    "pyjwt",
    "argon2-cffi",
)
_PEER_VERSIONS = (
    "fastapi-users",
    "fastapi-users-db-sqlalchemy",
    "authx",
    "sqlalchemy",
    "aiosqlite",
)


def _names(text: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)}; choose from {allowed}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per side per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (except -c1 rows)")
    parser.add_argument(
        "--only",
        type=lambda text: _names(text, scenarios.SCENARIOS),
        default=list(scenarios.SCENARIOS),
        help=f"comma-separated scenarios: {','.join(scenarios.SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--databases",
        type=lambda text: _names(text, list(DATABASES)),
        default=list(DATABASES),
        help="comma-separated: sqlite,postgres (default: both)",
    )
    parser.add_argument(
        "--scale-users", type=int, default=1_000_000, help="users of the large scale database"
    )
    parser.add_argument(
        "--results", type=Path, default=report.RESULTS, help="where latest.{md,json,png} go"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def _sqlite_database(work: Path, label: str) -> Iterator[str]:
    """A new SQLite file in the run's directory, deleted on exit (10⁶ users take 600 MB)."""
    path = work / f"{label}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm", ".migrate-lock"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


def _new_database(kind: str, work: Path, label: str) -> contextlib.AbstractContextManager[str]:
    return _sqlite_database(work, label) if kind == "sqlite" else postgres_database(label)


def _groups(only: list[str]) -> list[tuple[str, Callable[[Context], Measured]]]:
    """The selected scenarios as groups of sides measured together."""
    groups: list[tuple[str, Callable[[Context], Measured]]] = []
    if "bare" in only or "fastapi-users" in only:
        groups.append(
            (
                "me",
                lambda ctx: scenarios.me_scenarios(
                    ctx, bare="bare" in only, fastapi_users="fastapi-users" in only
                ),
            )
        )
    if "protected" in only:
        groups.append(("protected", lambda ctx: scenarios.protected_scenarios(ctx, authx=True)))
    if "refresh" in only:
        groups.append(("refresh", scenarios.refresh_scenarios))
    if "signin" in only:
        groups.append(("signin", scenarios.signin_scenarios))
    if "scale" in only:
        groups.append(("scale", scenarios.scale_scenarios))
    return groups


def _foreign_cpu_note(rounds: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """How much of the machine other processes took while sides were measured."""
    seen = [
        (float(sample["foreign_cores"]), f"{database} {group}, {side}")
        for database, groups in rounds.items()
        for group, measured in groups.items()
        for one in measured
        for side, sample in one.items()
    ]
    if not seen:
        return "No side was measured."
    worst = max(seen)
    return (
        f"Other processes (not this run's servers, wrk, runner or PostgreSQL) used a median of "
        f"{statistics.median(v for v, _ in seen):.2f} cores of {os.cpu_count()} while a side was "
        f"measured, at most {worst[0]:.2f} ({worst[1]}); per side in `latest.json` "
        "(`foreign_cores`)."
    )


def _notes(
    versions: dict[str, str], rounds: dict[str, dict[str, list[dict[str, Any]]]]
) -> list[str]:
    notes = [
        _foreign_cpu_note(rounds),
        "Our server is `bench/server.py`: the app's own `create_app`, every rate limit raised, "
        "`/bench/protected` and `/bench/public` added after the app's routes, and refresh answers "
        "repeating their Set-Cookie values in `X-Bench-Cookies` (wrk's Lua sees one value per "
        "header name); every other request passes that wrapper with one comparison.",
        "The -c32 sign-in and the refresh sides leave work queued in the server when wrk stops; "
        "before every side the runner waits until each server's CPU time stops growing.",
    ]
    peers_sqlalchemy = versions.get("sqlalchemy (peers)")
    if peers_sqlalchemy and peers_sqlalchemy != versions.get("sqlalchemy"):
        notes.append(
            f"fastapi-users runs on SQLAlchemy {peers_sqlalchemy} (what its adapter supports), "
            f"ours on {versions.get('sqlalchemy')}; the framework (FastAPI, Starlette, pydantic, "
            "uvicorn) is the same version on both sides."
        )
    return notes


def _print_rows(results: list[RowResult]) -> None:
    for result in results:
        median, spread = result.median, result.spread
        ratio = "invalid"
        if median is not None and spread is not None:
            ratio = f"{median:.2f} [{spread[0]:.2f}{report.DASH}{spread[1]:.2f}]"
        target = f"target {result.row.target}" if result.row.target else "no target"
        print(f"    {result.row.scenario}: {ratio} ({target}), errors {result.errors}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    wrk.require_wrk()
    postgres = None
    if "postgres" in args.databases:
        try:
            postgres = postgres_version()
        except OSError as exc:
            raise SystemExit(
                f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc}): `make bench` starts it; "
                "or run with --databases sqlite"
            ) from exc
    started = datetime.now(UTC)
    clock = time.monotonic()
    needs_peers = "fastapi-users" in args.only or "protected" in args.only
    peers_python = ensure_peers() if needs_peers else None
    hashed = seed.password_hash()
    python = Path(sys.executable)
    results: list[RowResult] = []
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {}
    failures: list[str] = []
    with work_dir() as work:
        for kind in args.databases:
            database = DATABASES[kind]

            new_database = functools.partial(_new_database, kind, work)

            with (
                new_database("ours") as url,
                scenarios.start_ours(
                    f"ours-{kind}", url, scenarios.ROTATED_USERS, hashed, python=python, work=work
                ) as ours,
            ):
                ctx = Context(
                    database=database,
                    rounds=args.rounds,
                    seconds=args.seconds,
                    connections=args.connections,
                    scale_users=args.scale_users,
                    work=work,
                    hashed=hashed,
                    ours=ours,
                    new_database=new_database,
                    python=python,
                    peers_python=peers_python,
                )
                for name, group in _groups(args.only):
                    print(f"[{time.monotonic() - clock:5.0f} s] {database}: {name}", flush=True)
                    try:
                        measured = group(ctx)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                        # One scenario that cannot run (a peer that does not start, a route
                        # that fails its first request) must not cost the others' results.
                        failures.append(f"{database} {name} did not run: {exc}")
                        print(f"    did not run: {exc}", flush=True)
                        continue
                    done = [summarize(row, database, measured.rounds) for row in measured.rows]
                    _print_rows(done)
                    results += done
                    rounds.setdefault(database, {})[name] = [
                        {side: dataclasses.asdict(sample) for side, sample in one.items()}
                        for one in measured.rounds
                    ]
    versions = installed_versions(python, _MAIN_VERSIONS)
    if peers_python is not None:
        peer = installed_versions(peers_python, _PEER_VERSIONS)
        versions |= {
            "fastapi-users": peer["fastapi-users"],
            "fastapi-users-db-sqlalchemy": peer["fastapi-users-db-sqlalchemy"],
            "authx": peer["authx"],
            "sqlalchemy (peers)": peer["sqlalchemy"],
            "aiosqlite (peers)": peer["aiosqlite"],
        }
    if postgres is not None:
        versions["PostgreSQL server"] = postgres
    versions["wrk"] = wrk.wrk_version()
    run = report.Run(
        started=started.isoformat(timespec="seconds"),
        wall_seconds=time.monotonic() - clock,
        command=shlex.join(["python", "-m", "bench.run", *(argv or sys.argv[1:])]),
        machine=report.machine(),
        versions=versions,
        settings={
            "rounds": args.rounds,
            "seconds": args.seconds,
            "verify_seconds": min(args.seconds, scenarios.VERIFY_SECONDS),
            "connections": args.connections,
            "wrk_timeout": wrk.TIMEOUT,
            "uvicorn_options": list(UVICORN_OPTIONS),
            "raised_limits": RAISED_LIMITS,
            "rotated_users": scenarios.ROTATED_USERS,
            "refresh_pool": scenarios.REFRESH_POOL,
            "scale_small": scenarios.SCALE_SMALL,
            "scale_users": args.scale_users,
            "scenarios": args.only,
            "databases": [DATABASES[kind] for kind in args.databases],
        },
        notes=failures + _notes(versions, rounds),
        rounds=rounds,
    )
    report.write(results, run, args.results)
    print(
        f"Wrote {args.results}/latest.md, latest.json, latest.png ({run.wall_seconds / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
