"""The scenarios of issue 9, each a set of sides measured in alternating rounds and its rows.

Every function here gets a `Context` (one database kind, our server already up with seeded
users), starts what else it needs (the bare app, a peer, more servers), checks that each side's
request succeeds once, runs the rounds and returns the rows with the raw samples.

1. `bare`, `fastapi-users`: `GET /auth/me` ÷ a bare FastAPI route, ÷ fastapi-users `/users/me`.
2. `protected`: a route with our `CurrentUser` ÷ the same route without it; ÷ AuthX's.
3. `refresh`: `POST /auth/refresh` ÷ `GET /auth/me`, and refresh's p99 ÷ p50.
4. `signin`: mean sign-in at one connection ÷ one argon2id verify; sign-ins/s at 32
   connections ÷ the hash-bound limit (cores ÷ one verify).
5. `scale`: p50 of sign-in (less one verify) and of `/auth/me`, 10⁶ users ÷ 10³ users.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, extract_parameters

from bench import client, seed, wrk
from bench.client import request_line, write_lines
from bench.measure import Round, Row, Side, Target, alternate, timed
from bench.servers import serve, server_pids, settle
from bench.wrk import Sample

__all__ = ["SCENARIOS", "Context", "Measured", "Ours", "start_ours"]

SQLITE, POSTGRES = "SQLite", "PostgreSQL"
# Users signed in over and over by the sign-in scenarios, so that no per-account figure matters.
ROTATED_USERS = 64
# Signed-in sessions the refresh pool holds at the start of each round: the 32 in flight when a
# round stops are lost (their answer was never read), the rest carry over.
REFRESH_POOL = 4 * 32
# One verify is timed for this long per round (it varies far less than an HTTP round).
VERIFY_SECONDS = 2
SCALE_SMALL = 1_000


@dataclass(frozen=True, slots=True)
class Ours:
    """Our server on one database, and what the scenarios need from it."""

    base: str
    users: int  # seeded: seed.email_of(0 … users-1), password seed.PASSWORD
    token: str  # an access token of user 0
    me_body: Any  # what GET /auth/me answered with it


@dataclass(frozen=True, slots=True)
class Context:
    database: str  # SQLITE or POSTGRES
    rounds: int
    seconds: int
    connections: int
    scale_users: int
    work: Path
    hashed: str  # the seeded users' password hash
    ours: Ours
    # A new empty database for the label: a SQLite URL or a PostgreSQL scratch database.
    new_database: Callable[[str], AbstractContextManager[str]]
    python: Path  # the main venv's Python (ours, the bare app)
    peers_python: Path | None  # the peers' venv (fastapi-users, AuthX)

    def target(self, sqlite: float, postgres: float) -> float:
        return sqlite if self.database == SQLITE else postgres

    def alternate(self, sides: dict[str, Side]) -> list[dict[str, Sample]]:
        return alternate(
            sides,
            rounds=self.rounds,
            seconds=self.seconds,
            settle=settle,
            server_pids=server_pids,
        )


@dataclass(frozen=True, slots=True)
class Measured:
    rows: list[Row]
    rounds: list[dict[str, Sample]]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _get(url: str, connections: int, headers: dict[str, str] | None = None) -> Side:
    """A side: wrk GET on `url`, after checking once that it answers 200."""
    client.call("GET", url, headers=headers).expect(200)
    return lambda seconds: wrk.run(url, seconds, connections=connections, headers=headers)


def _rotating(base: str, lines: Sequence[str], file: Path, connections: int) -> Side:
    """A side: wrk with `rotate.lua` over prepared requests."""
    write_lines(file, lines)
    return lambda seconds: wrk.run(
        base, seconds, connections=connections, script="rotate.lua", script_args=[str(file)]
    )


def _rps(side: str) -> Callable[[Round], float]:
    return lambda measured: measured[side].rps


def _our_env(database_url: str, data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return {"BENCH_DATABASE_URL": database_url, "BENCH_DATA_DIR": str(data_dir)}


@contextlib.contextmanager
def start_ours(
    label: str, database_url: str, users: int, hashed: str, *, python: Path, work: Path
) -> Iterator[Ours]:
    """Seed `users` users into a new database, serve our app on it, sign user 0 in."""
    seed.seed(database_url, users, hashed)
    with serve(
        label,
        "bench.server:create_app",
        python=python,
        env=_our_env(database_url, work / f"data-{label}"),
        ready_path="/health",
        log_dir=work,
    ) as base:
        client.call("GET", f"{base}/health").expect(200)
        session = client.sign_in(base, seed.email_of(0), seed.PASSWORD, client.csrf(base))
        me = client.call("GET", f"{base}/auth/me", headers=_bearer(session.access_token))
        yield Ours(base=base, users=users, token=session.access_token, me_body=me.expect().json())


def _peer_database_url(url: str) -> str:
    """The same database for the peer's async SQLAlchemy driver."""
    return url.replace("sqlite:", "sqlite+aiosqlite:", 1).replace(
        "postgresql:", "postgresql+asyncpg:", 1
    )


def _fastapi_users_token(base: str) -> str:
    """Register and log in over HTTP, as fastapi-users' documentation does."""
    email, password = "bench.peer@example.com", seed.PASSWORD
    client.call(
        "POST", f"{base}/auth/register", json_body={"email": email, "password": password}
    ).expect(201)
    login = client.call(
        "POST", f"{base}/auth/jwt/login", form={"username": email, "password": password}
    )
    return str(login.expect(200).json()["access_token"])


def _peers(ctx: Context) -> Path:
    if ctx.peers_python is None:
        raise RuntimeError("the peers' venv is needed (bench.peers.environment)")
    return ctx.peers_python


def me_scenarios(ctx: Context, *, bare: bool, fastapi_users: bool) -> Measured:
    """`GET /auth/me` against the bare route and/or fastapi-users, our side measured once per
    round for both rows."""
    ours_side = "ours /auth/me"
    sides = {ours_side: _get(f"{ctx.ours.base}/auth/me", ctx.connections, _bearer(ctx.ours.token))}
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        if bare:
            base = stack.enter_context(
                serve(
                    "bare",
                    "bench.peers.bare:create_app",
                    python=ctx.python,
                    env={"BENCH_BARE_BODY": json.dumps(ctx.ours.me_body)},
                    log_dir=ctx.work,
                )
            )
            sides["bare FastAPI"] = _get(f"{base}/auth/me", ctx.connections)
            rows.append(
                Row(
                    key="me/bare",
                    how=f"wrk -c{ctx.connections} `GET /auth/me` with one user's bearer token "
                    "÷ the same path on a bare `FastAPI()` app (its own process) answering the "
                    "same JSON body",
                    scenario="`GET /auth/me` ÷ bare FastAPI route",
                    a_label="ours",
                    b_label="bare FastAPI",
                    unit="req/s",
                    a=_rps(ours_side),
                    b=_rps("bare FastAPI"),
                    a_side=ours_side,
                    b_side="bare FastAPI",
                    target=Target(">=", ctx.target(0.5, 0.35)),
                )
            )
        if fastapi_users:
            url = stack.enter_context(ctx.new_database("fastapi_users"))
            base = stack.enter_context(
                serve(
                    "fastapi-users",
                    "bench.peers.fastapi_users_app:create_app",
                    python=_peers(ctx),
                    env={"BENCH_PEER_DATABASE_URL": _peer_database_url(url)},
                    log_dir=ctx.work,
                )
            )
            token = _fastapi_users_token(base)
            sides["fastapi-users"] = _get(f"{base}/users/me", ctx.connections, _bearer(token))
            rows.append(
                Row(
                    key="me/fastapi-users",
                    how="÷ `GET /users/me` of fastapi-users' documented SQLAlchemy setup "
                    "(aiosqlite or asyncpg, its own database), with a token from its own "
                    "register and login",
                    scenario="`GET /auth/me` ÷ fastapi-users `GET /users/me`",
                    a_label="ours",
                    b_label="fastapi-users",
                    unit="req/s",
                    a=_rps(ours_side),
                    b=_rps("fastapi-users"),
                    a_side=ours_side,
                    b_side="fastapi-users",
                    target=Target(">=", ctx.target(5.0, 3.0)),
                )
            )
        return Measured(rows, ctx.alternate(sides))


def protected_scenarios(ctx: Context, *, authx: bool) -> Measured:
    """What our auth layer costs a route that does nothing else, on the same server; and the same
    route behind AuthX."""
    a, b = "ours protected", "ours unprotected"
    base = ctx.ours.base
    sides = {
        a: _get(f"{base}/bench/protected", ctx.connections, _bearer(ctx.ours.token)),
        b: _get(f"{base}/bench/public", ctx.connections),
    }
    rows = [
        Row(
            key="protected/unprotected",
            how="`GET /bench/protected` (our `CurrentUser`, answers the caller's id) ÷ "
            "`GET /bench/public` (no dependency, a fixed id), same server; neither reads the "
            "database",
            scenario="route returning the caller's id ÷ same route unprotected",
            a_label="protected",
            b_label="unprotected",
            unit="req/s",
            a=_rps(a),
            b=_rps(b),
            a_side=a,
            b_side=b,
            target=Target(">=", 0.9),
        )
    ]
    with contextlib.ExitStack() as stack:
        if authx:
            peer = stack.enter_context(
                serve(
                    "authx",
                    "bench.peers.authx_app:create_app",
                    python=_peers(ctx),
                    env={},
                    log_dir=ctx.work,
                )
            )
            user_id = ctx.ours.me_body["user"]["id"]
            login = client.call("POST", f"{peer}/login?uid={user_id}").expect(200)
            token = login.json()["access_token"]
            sides["AuthX protected"] = _get(
                f"{peer}/bench/protected", ctx.connections, _bearer(token)
            )
            rows.append(
                Row(
                    key="protected/authx",
                    how="÷ the same route behind AuthX's `access_token_required` (HS256), its own "
                    "process",
                    scenario="route returning the caller's id ÷ the same behind AuthX",
                    a_label="ours",
                    b_label="AuthX",
                    unit="req/s",
                    a=_rps(a),
                    b=_rps("AuthX protected"),
                    a_side=a,
                    b_side="AuthX protected",
                )
            )
        return Measured(rows, ctx.alternate(sides))


class _RefreshSessions:
    """The refresh side: a pool of signed-in sessions that `refresh.lua` rotates.

    Before each wrk run the pool is topped up to `REFRESH_POOL` with new sign-ins; after it, the
    pool is what the script wrote back (the successors of every session whose answer came)."""

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._pool: list[str] = []
        self._signed_in = 0
        self._sessions = ctx.work / "refresh-sessions.txt"
        self._left = ctx.work / "refresh-left.txt"

    def _top_up(self) -> None:
        missing = REFRESH_POOL - len(self._pool)
        emails = [
            seed.email_of((self._signed_in + i) % ROTATED_USERS) for i in range(max(missing, 0))
        ]
        self._signed_in += len(emails)
        for session in client.sign_in_many(self._ctx.ours.base, emails, seed.PASSWORD):
            self._pool.append(
                f"{session.refresh_token}\t{session.csrf.cookie}\t{session.csrf.token}"
            )

    def __call__(self, seconds: int) -> Sample:
        self._top_up()
        write_lines(self._sessions, self._pool)
        self._left.write_text("")
        sample = wrk.run(
            f"{self._ctx.ours.base}/auth/refresh",
            seconds,
            connections=self._ctx.connections,
            script="refresh.lua",
            script_args=[str(self._sessions), str(self._left)],
        )
        self._pool = self._left.read_text().splitlines()
        return sample


def refresh_scenarios(ctx: Context) -> Measured:
    """`POST /auth/refresh` (a rotation: one write transaction) against `GET /auth/me`, same
    server, and how long refresh's tail is at 32 connections."""
    a, b = "ours refresh", "ours /auth/me"
    sides: dict[str, Side] = {
        a: _RefreshSessions(ctx),
        b: _get(f"{ctx.ours.base}/auth/me", ctx.connections, _bearer(ctx.ours.token)),
    }
    rows = [
        Row(
            key="refresh/me",
            how=f"wrk -c{ctx.connections} `POST /auth/refresh` over {REFRESH_POOL} signed-in "
            "sessions (each answer's successor goes back to the pool; no token is sent twice) "
            "÷ `GET /auth/me`, same server",
            scenario="`POST /auth/refresh` ÷ `GET /auth/me`",
            a_label="refresh",
            b_label="/auth/me",
            unit="req/s",
            a=_rps(a),
            b=_rps(b),
            a_side=a,
            b_side=b,
            target=Target(">=", 0.5),
        ),
        Row(
            key="refresh/tail",
            how="the refresh side above: its p99 ÷ its p50",
            scenario=f"refresh p99 ÷ p50 at {ctx.connections} connections",
            a_label="p99",
            b_label="p50",
            unit="ms",
            a=lambda measured: measured[a].p99_ms,
            b=lambda measured: measured[a].p50_ms,
            a_side=a,
            b_side=a,
            target=Target("<=", 5.0),
        ),
    ]
    return Measured(rows, ctx.alternate(sides))


def _verify_side(hashed: str) -> Side:
    """One argon2id verify with the app's parameters (read from its hash), in this process."""
    hasher = PasswordHasher.from_parameters(extract_parameters(hashed))
    return lambda seconds: timed(
        lambda: hasher.verify(hashed, seed.PASSWORD), min(seconds, VERIFY_SECONDS)
    )


def _sign_in_lines(base: str, users: Sequence[int]) -> list[str]:
    """`POST /auth/signin` for each user, with one CSRF cookie and its token: a cookie not bound
    to any session stays valid whatever sign-ins set afterwards (the answers' cookies are not
    kept)."""
    pair = client.csrf(base)
    return [
        request_line(
            "POST",
            "/auth/signin",
            body={"email": seed.email_of(user), "password": seed.PASSWORD},
            headers=pair.headers(),
        )
        for user in users
    ]


def signin_scenarios(ctx: Context) -> Measured:
    """Sign-in against the hash it must compute: latency at 1 connection, throughput at 32."""
    one, many, verify = "sign-in -c1", f"sign-in -c{ctx.connections}", "argon2id verify"
    lines = _sign_in_lines(ctx.ours.base, range(min(ROTATED_USERS, ctx.ours.users)))
    client.sign_in(ctx.ours.base, seed.email_of(0), seed.PASSWORD, client.csrf(ctx.ours.base))
    # (That sign-in checks the route answers 200 before wrk counts on it.)
    cores = os.cpu_count() or 1
    sides = {
        one: _rotating(ctx.ours.base, lines, ctx.work / "signin.txt", 1),
        verify: _verify_side(ctx.hashed),
        many: _rotating(ctx.ours.base, lines, ctx.work / "signin.txt", ctx.connections),
    }
    rows = [
        Row(
            key="signin/verify",
            how=f"mean latency of wrk -c1 `POST /auth/signin`, {ROTATED_USERS} users in turn, ÷ "
            "the mean of one `PasswordHasher.verify` with the app's parameters, timed in the "
            "runner while the servers are idle",
            scenario="mean sign-in (1 connection) ÷ one argon2id verify",
            a_label="sign-in",
            b_label="verify",
            unit="ms",
            a=lambda measured: measured[one].mean_ms,
            b=lambda measured: measured[verify].mean_ms,
            a_side=one,
            b_side=verify,
            target=Target("<=", 1.15),
        ),
        Row(
            key="signin/hash-bound",
            how=f"sign-ins/s of the same requests at -c{ctx.connections} ÷ (cores ÷ one verify's "
            "mean): the rate if the hash were all a sign-in cost",
            scenario=f"sign-ins/s ({ctx.connections} connections) ÷ (cores ÷ one verify)",
            a_label="sign-ins/s",
            b_label=f"{cores} cores ÷ verify",
            unit="/s",
            a=_rps(many),
            b=lambda measured: cores * 1000 / measured[verify].mean_ms,
            a_side=many,
            b_side=verify,
            target=Target(">=", 0.9),
        ),
    ]
    return Measured(rows, ctx.alternate(sides))


def scale_scenarios(ctx: Context) -> Measured:
    """The same requests on two servers whose databases hold 10³ and 10⁶ users, alternating."""
    sizes = {"small": SCALE_SMALL, "large": ctx.scale_users}
    names = {"small": f"{SCALE_SMALL:,}", "large": f"{ctx.scale_users:,}"}
    verify = "argon2id verify"
    sides: dict[str, Side] = {verify: _verify_side(ctx.hashed)}
    with contextlib.ExitStack() as stack:
        for size, users in sizes.items():
            url = stack.enter_context(ctx.new_database(f"scale_{size}"))
            ours = stack.enter_context(
                start_ours(f"ours-{size}", url, users, ctx.hashed, python=ctx.python, work=ctx.work)
            )
            picked = seed.spread(users, ROTATED_USERS)
            sessions = client.sign_in_many(
                ours.base, [seed.email_of(i) for i in picked], seed.PASSWORD
            )
            sides[f"sign-in {names[size]}"] = _rotating(
                ours.base, _sign_in_lines(ours.base, picked), ctx.work / f"signin-{size}.txt", 1
            )
            me_lines = [
                request_line("GET", "/auth/me", headers=_bearer(s.access_token)) for s in sessions
            ]
            client.call(
                "GET", f"{ours.base}/auth/me", headers=_bearer(sessions[0].access_token)
            ).expect()
            sides[f"/auth/me {names[size]}"] = _rotating(
                ours.base, me_lines, ctx.work / f"me-{size}.txt", ctx.connections
            )
        small_signin, large_signin = (f"sign-in {names[s]}" for s in ("small", "large"))
        small_me, large_me = (f"/auth/me {names[s]}" for s in ("small", "large"))

        def beyond_hash(side: str) -> Callable[[Round], float]:
            return lambda measured: measured[side].p50_ms - measured[verify].mean_ms

        rows = [
            Row(
                key="scale/signin",
                scenario=f"p50 sign-in less one verify, {names['large']} ÷ {names['small']} users",
                a_label=f"{names['large']} users",
                b_label=f"{names['small']} users",
                unit="ms",
                a=beyond_hash(large_signin),
                b=beyond_hash(small_signin),
                a_side=large_signin,
                b_side=small_signin,
                extra_sides=(verify,),
                target=Target("<=", 1.2),
                how=f"(p50 of wrk -c1 sign-in, less one verify's mean) with {names['large']} "
                f"users ÷ with {names['small']}: two servers, two databases, alternating; "
                f"{ROTATED_USERS} users spread over each table",
            ),
            Row(
                key="scale/me",
                scenario=f"p50 `GET /auth/me`, {names['large']} ÷ {names['small']} users",
                a_label=f"{names['large']} users",
                b_label=f"{names['small']} users",
                unit="ms",
                a=lambda measured: measured[large_me].p50_ms,
                b=lambda measured: measured[small_me].p50_ms,
                a_side=large_me,
                b_side=small_me,
                target=Target("<=", 1.2),
                how=f"p50 of wrk -c{ctx.connections} `GET /auth/me`, {ROTATED_USERS} users' tokens "
                "in turn, on the same two servers",
            ),
        ]
        return Measured(rows, ctx.alternate(sides))


# The scenarios `--only` can name, in the order they run.
SCENARIOS = ("bare", "fastapi-users", "protected", "refresh", "signin", "scale")
