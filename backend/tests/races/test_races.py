"""Races at scale, on real processes: two uvicorn instances, one PostgreSQL database, one Redis.

Each test sends its requests at once across both instances and then checks two things: what the
clients saw (status codes, cookies) and what the database holds afterwards (no user without a
profile, no session with two live refresh tokens). The figures go to `race_figures`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy

import asyncpg
import httpx
import pytest

from backend.app.core.security import CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE
from backend.tests.helpers import PASSWORD, unique_email
from backend.tests.races.conftest import Cluster, RaceFigures, RaceServer

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.races]

# 100 sessions x 10 rounds = 1,000 refresh pairs; a pair is one cookie sent to both instances.
REFRESH_SESSIONS = 100
REFRESH_ROUNDS = 10
# Pairs in flight at once (64 concurrent refreshes): enough to keep both instances and PostgreSQL
# saturated on 2 cores, under the shipped 10 s reuse interval. The interval counts from when a
# request reaches its handler; far past saturation (100 pairs at once here) a twin can wait in
# the event loop for more than 10 s and be answered refresh_token_reused, as GoTrue would.
PAIR_CONCURRENCY = 32
# Sign-ins cost an argon2 verify each; more at once only queues them in the worker threads.
SIGNIN_CONCURRENCY = 16
SIGNUPS = 200
SAME_EMAIL_SIGNUPS = 20
LOAD_WORKERS = 24
# The kill comes once the victim has answered this many of each kind of request (or after the
# maximum), and the load goes on for a few seconds on the survivor alone.
LOAD_EACH_BEFORE_KILL = 10
LOAD_MAX_SECONDS_BEFORE_KILL = 20.0
LOAD_SECONDS_AFTER_KILL = 4.0
ITEMS_AND_REFRESHES_PER_USER = 4
OPERATIONS = ("signup", "signin", "item", "refresh")


# --- the HTTP client side ----------------------------------------------------------------------


@dataclass
class Csrf:
    nonce: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {CSRF_HEADER: self.token, "Cookie": f"{CSRF_COOKIE}={self.nonce}"}


@dataclass
class Session:
    """One browser's signed-in state: the refresh cookie, its CSRF pair, the access token."""

    refresh_token: str
    csrf: Csrf
    access_token: str

    @property
    def refresh_headers(self) -> dict[str, str]:
        cookie = f"{REFRESH_COOKIE}={self.refresh_token}; {CSRF_COOKIE}={self.csrf.nonce}"
        return {CSRF_HEADER: self.csrf.token, "Cookie": cookie}


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The cookies a response sets, by name (the value of each `Set-Cookie`)."""
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, value = header.split(";", 1)[0].partition("=")
        cookies[name.strip()] = value.strip()
    return cookies


@asynccontextmanager
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """One connection pool for many simulated browsers.

    Its cookie jar refuses every cookie: each request carries its own browser's cookies in an
    explicit `Cookie` header, so that no cookie of one session can leak into another's request.
    """
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    # No keep-alive expiry during a test (the instances keep idle connections for 300 s): with one,
    # httpcore 1.0 may close an idle connection it has just handed to a queued request when this
    # process is starved of CPU (`ReadError` <- `ClosedResourceError`), and uvicorn may close one
    # that a request is being sent on ("Server disconnected without sending a response"). Both
    # are client-side artefacts, not answers of the app.
    limits = httpx.Limits(
        max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=120
    )
    async with httpx.AsyncClient(cookies=jar, limits=limits, timeout=60) as client:
        yield client


def csrf_of(response: httpx.Response) -> Csrf:
    """The CSRF pair a sign-in or refresh hands over; its cookie is bound to the new refresh
    cookie, so a browser keeps both together, as this one must."""
    return Csrf(nonce=set_cookies(response)[CSRF_COOKIE], token=response.json()["csrfToken"])


async def fetch_csrf(client: httpx.AsyncClient, base_url: str) -> Csrf:
    response = await client.get(f"{base_url}/auth/csrf")
    assert response.status_code == 200, response.text
    return Csrf(nonce=set_cookies(response)[CSRF_COOKIE], token=response.json()["csrfToken"])


async def sign_up(client: httpx.AsyncClient, base_url: str, csrf: Csrf, email: str):
    body = {"email": email, "password": PASSWORD, "profile": {"displayName": "Racer"}}
    return await client.post(f"{base_url}/auth/signup", json=body, headers=csrf.headers)


async def sign_in(client: httpx.AsyncClient, base_url: str, csrf: Csrf, email: str):
    body = {"email": email, "password": PASSWORD}
    return await client.post(f"{base_url}/auth/signin", json=body, headers=csrf.headers)


def session_from(response: httpx.Response) -> Session:
    """The browser state after a sign-in (which rotates the CSRF cookie)."""
    cookies, body = set_cookies(response), response.json()
    return Session(
        refresh_token=cookies[REFRESH_COOKIE],
        csrf=Csrf(nonce=cookies[CSRF_COOKIE], token=body["csrfToken"]),
        access_token=body["accessToken"],
    )


async def refresh(client: httpx.AsyncClient, base_url: str, session: Session):
    return await client.post(f"{base_url}/auth/refresh", headers=session.refresh_headers)


async def refresh_pair(
    client: httpx.AsyncClient, base_urls: tuple[str, str], session: Session
) -> tuple[list[httpx.Response], list[float]]:
    """One cookie refreshed on both instances at once: the responses, and when each arrived."""
    started = time.monotonic()

    async def timed(base_url: str) -> tuple[httpx.Response, float]:
        response = await refresh(client, base_url, session)
        return response, time.monotonic() - started

    results = await asyncio.gather(*(timed(base_url) for base_url in base_urls))
    return [response for response, _ in results], [seconds for _, seconds in results]


async def create_item(client: httpx.AsyncClient, base_url: str, session: Session, title: str):
    headers = {"Authorization": f"Bearer {session.access_token}"}
    return await client.post(f"{base_url}/items", json={"title": title}, headers=headers)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- the database side -------------------------------------------------------------------------

# Every check counts rows that should not exist; a consistent database answers 0 to each.
CONSISTENCY_CHECKS = {
    "users_without_profile": """
        SELECT count(*) FROM identity_users u
        LEFT JOIN user_profile p ON p.id = u.id WHERE p.id IS NULL""",
    "profiles_without_user": """
        SELECT count(*) FROM user_profile p
        LEFT JOIN identity_users u ON u.id = p.id WHERE u.id IS NULL""",
    "refresh_tokens_without_session": """
        SELECT count(*) FROM identity_refresh_tokens t
        LEFT JOIN identity_sessions s ON s.id = t.session_id WHERE s.id IS NULL""",
    "sessions_without_user": """
        SELECT count(*) FROM identity_sessions s
        LEFT JOIN identity_users u ON u.id = s.user_id WHERE u.id IS NULL""",
    # A live session has exactly one live refresh token (sign-in and each rotation write the
    # session's tokens in one transaction); a revoked session has none.
    "sessions_with_wrong_live_token_count": """
        SELECT count(*) FROM identity_sessions s
        WHERE (SELECT count(*) FROM identity_refresh_tokens t
               WHERE t.session_id = s.id AND t.revoked_at IS NULL)
              <> CASE WHEN s.revoked_at IS NULL THEN 1 ELSE 0 END""",
    "items_without_user": """
        SELECT count(*) FROM items i
        LEFT JOIN identity_users u ON u.id = i.user_id WHERE u.id IS NULL""",
}


async def consistency(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {name: await conn.fetchval(query) for name, query in CONSISTENCY_CHECKS.items()}
    finally:
        await conn.close()


# --- the races ---------------------------------------------------------------------------------


class TestRefreshPairs:
    async def test_refresh_pairs_across_instances_have_one_successor_each(
        self, cluster: Cluster, race_figures: RaceFigures
    ):
        """1,000 pairs, each one cookie sent at once to both instances: both 200, one successor."""
        first, second = (server.base_url for server in cluster.servers)
        async with http_client() as client:
            csrf = await fetch_csrf(client, first)
            email = unique_email()
            assert (await sign_up(client, first, csrf, email)).status_code == 201
            gate = asyncio.Semaphore(SIGNIN_CONCURRENCY)

            async def open_session(index: int) -> Session:
                async with gate:
                    response = await sign_in(client, (first, second)[index % 2], csrf, email)
                assert response.status_code == 200, response.text
                return session_from(response)

            started = time.monotonic()
            sessions = await asyncio.gather(*(open_session(i) for i in range(REFRESH_SESSIONS)))
            signin_seconds = time.monotonic() - started

            tally: Counter[str] = Counter()
            problems: list[str] = []
            latencies: list[float] = []
            gaps: list[float] = []
            pair_gate = asyncio.Semaphore(PAIR_CONCURRENCY)

            async def run_pairs(index: int, session: Session) -> None:
                for round_ in range(REFRESH_ROUNDS):
                    # Alternate which instance is asked first, so neither always wins the race.
                    order = (first, second) if (index + round_) % 2 == 0 else (second, first)
                    predecessor = session.refresh_token
                    async with pair_gate:
                        responses, seconds = await refresh_pair(client, order, session)
                    latencies.extend(seconds)
                    gaps.append(abs(seconds[0] - seconds[1]))
                    tally["pairs_tried"] += 1
                    statuses = [response.status_code for response in responses]
                    if statuses != [200, 200]:
                        tally["pairs_with_401" if 401 in statuses else "pairs_other_failure"] += 1
                        bodies = [response.text[:200] for response in responses]
                        problems.append(f"session {index} round {round_}: {statuses} {bodies}")
                        return
                    successors = {
                        set_cookies(response).get(REFRESH_COOKIE) for response in responses
                    }
                    if len(successors) != 1:
                        tally["double_successors"] += 1
                        problems.append(f"session {index} round {round_}: {len(successors)} new")
                        return
                    successor = successors.pop()
                    if successor is None or successor == predecessor:
                        tally["pairs_not_rotated"] += 1
                        problems.append(f"session {index} round {round_}: not rotated")
                        return
                    session.refresh_token = successor
                    session.access_token = responses[0].json()["accessToken"]
                    session.csrf = csrf_of(responses[0])

            started = time.monotonic()
            await asyncio.gather(*(run_pairs(i, s) for i, s in enumerate(sessions)))
            refresh_seconds = time.monotonic() - started

        conn = await asyncpg.connect(cluster.database_url)
        try:
            final_hashes = [token_hash(session.refresh_token) for session in sessions]
            rows = await conn.fetch(
                """
                SELECT t.session_id,
                       count(*) AS tokens,
                       count(*) FILTER (WHERE t.revoked_at IS NULL) AS live,
                       bool_or(t.revoked_at IS NULL AND t.token_hash = ANY($1)) AS final_live
                FROM identity_refresh_tokens t
                WHERE t.session_id IN (
                    SELECT session_id FROM identity_refresh_tokens WHERE token_hash = ANY($1)
                )
                GROUP BY t.session_id
                """,
                final_hashes,
            )
        finally:
            await conn.close()
        # One rotation per pair: each session holds its first token plus one per round, one live.
        stored = Counter(
            "ok"
            if (row["tokens"], row["live"], row["final_live"]) == (REFRESH_ROUNDS + 1, 1, True)
            else "wrong"
            for row in rows
        )

        race_figures.record(
            "refresh_pairs",
            pairs_tried=tally["pairs_tried"],
            double_successors=tally["double_successors"],
            pairs_with_401=tally["pairs_with_401"],
            pairs_other_failure=tally["pairs_other_failure"] + tally["pairs_not_rotated"],
            sessions=REFRESH_SESSIONS,
            rounds=REFRESH_ROUNDS,
            sessions_stored_wrong=stored["wrong"] + REFRESH_SESSIONS - len(rows),
            pair_concurrency=PAIR_CONCURRENCY,
            signin_seconds=round(signin_seconds, 2),
            refresh_seconds=round(refresh_seconds, 2),
            refresh_p99_seconds=round(sorted(latencies)[int(len(latencies) * 0.99)], 2),
            max_gap_within_pair_seconds=round(max(gaps), 2),
        )
        summary = race_figures.summary("refresh_pairs")
        assert problems == [], f"{summary}\nfirst problems: {problems[:10]}"
        assert tally["pairs_tried"] == REFRESH_SESSIONS * REFRESH_ROUNDS, summary
        assert stored == Counter(ok=REFRESH_SESSIONS), summary


class TestSignUps:
    async def test_concurrent_signups_on_two_instances_leave_no_user_without_profile(
        self, cluster: Cluster, race_figures: RaceFigures
    ):
        """200 sign-ups at once, split across both instances: all 201, every user has a profile."""
        emails = [unique_email() for _ in range(SIGNUPS)]
        async with http_client() as client:
            csrf = await fetch_csrf(client, cluster.first.base_url)
            started = time.monotonic()
            responses = await asyncio.gather(
                *(
                    sign_up(client, cluster.servers[i % 2].base_url, csrf, email)
                    for i, email in enumerate(emails)
                )
            )
            seconds = time.monotonic() - started
        statuses = Counter(response.status_code for response in responses)

        conn = await asyncpg.connect(cluster.database_url)
        try:
            created = await conn.fetchval(
                "SELECT count(*) FROM identity_users u JOIN user_profile p ON p.id = u.id"
                " WHERE u.email = ANY($1::text[])",
                emails,
            )
        finally:
            await conn.close()
        checks = await consistency(cluster.database_url)

        race_figures.record(
            "signups",
            signups_tried=SIGNUPS,
            created_201=statuses[201],
            other_statuses=sum(n for status, n in statuses.items() if status != 201),
            users_with_profile=created,
            orphans=checks["users_without_profile"],
            seconds=round(seconds, 2),
        )
        summary = race_figures.summary("signups")
        assert statuses == Counter({201: SIGNUPS}), f"{summary}; statuses {dict(statuses)}"
        assert created == SIGNUPS, summary
        assert checks == dict.fromkeys(CONSISTENCY_CHECKS, 0), f"{summary}; {checks}"

    async def test_one_email_signed_up_20_times_at_once_gets_exactly_one_201(
        self, cluster: Cluster, race_figures: RaceFigures
    ):
        """20 sign-ups of one email at once on both instances: one 201, 19 user_already_exists."""
        email = unique_email()
        async with http_client() as client:
            csrf = await fetch_csrf(client, cluster.first.base_url)
            responses = await asyncio.gather(
                *(
                    sign_up(client, cluster.servers[i % 2].base_url, csrf, email)
                    for i in range(SAME_EMAIL_SIGNUPS)
                )
            )
        outcomes = Counter(
            (response.status_code, response.json().get("code")) for response in responses
        )

        conn = await asyncpg.connect(cluster.database_url)
        try:
            rows = await conn.fetchval(
                "SELECT count(*) FROM identity_users u JOIN user_profile p ON p.id = u.id"
                " WHERE u.email = $1",
                email,
            )
        finally:
            await conn.close()

        race_figures.record(
            "same_email",
            signups_tried=SAME_EMAIL_SIGNUPS,
            created_201=outcomes[(201, None)],
            user_already_exists_409=outcomes[(409, "user_already_exists")],
            user_rows=rows,
        )
        assert outcomes == Counter(
            {(201, None): 1, (409, "user_already_exists"): SAME_EMAIL_SIGNUPS - 1}
        ), f"{race_figures.summary('same_email')}; outcomes {dict(outcomes)}"
        assert rows == 1


@dataclass
class LoadRun:
    """Users that sign up, sign in, create items and refresh, alternating between instances.

    A request that fails at the connection level on the killed instance, once it is killed, is
    what a load balancer would retry: it is sent again to the survivor. Anything else that is not
    the expected status (a 5xx above all) is a problem.
    """

    client: httpx.AsyncClient
    survivor: RaceServer
    victim: RaceServer
    csrf: Csrf
    killed_at: float | None = None
    # (server, "before_kill" | "after_kill", operation, status code or exception name) -> count
    outcomes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    # Set once the victim has answered LOAD_EACH_BEFORE_KILL of every kind of request.
    victim_busy: asyncio.Event = field(default_factory=asyncio.Event)

    def phase(self) -> str:
        return "before_kill" if self.killed_at is None else "after_kill"

    def count(
        self,
        server: RaceServer | None = None,
        phase: str | None = None,
        operation: str | None = None,
        result: Callable[[str], bool] = lambda result: True,
    ) -> int:
        return sum(
            n
            for (name, when, op, outcome), n in self.outcomes.items()
            if (server is None or server.name == name)
            and (phase is None or phase == when)
            and (operation is None or operation == op)
            and result(outcome)
        )

    async def send(
        self,
        operation: str,
        server: RaceServer,
        call: Callable[[str], Awaitable[httpx.Response]],
        expected: set[int],
        expected_on_retry: set[int] | None = None,
    ) -> httpx.Response | None:
        """The response if its status is expected, else None (and the problem is recorded)."""
        try:
            response = await call(server.base_url)
        except httpx.TransportError as exc:
            self.outcomes[(server.name, self.phase(), operation, type(exc).__name__)] += 1
            if server is not self.victim or self.killed_at is None:
                self.problems.append(f"{operation} on {server.name}: {exc!r}")
                return None
            retry = f"{operation}_retried"
            return await self.send(retry, self.survivor, call, expected_on_retry or expected)
        self.outcomes[(server.name, self.phase(), operation, str(response.status_code))] += 1
        if server is self.victim and all(
            self.count(server, operation=kind) >= LOAD_EACH_BEFORE_KILL for kind in OPERATIONS
        ):
            self.victim_busy.set()
        if response.status_code not in expected:
            body = response.text[:300]
            self.problems.append(f"{operation} on {server.name}: {response.status_code} {body}")
            return None
        return response

    async def user_cycle(self, worker: int, servers: Iterator[RaceServer]) -> None:
        email = unique_email()
        csrf = self.csrf
        signup = await self.send(
            "signup", next(servers), lambda url: sign_up(self.client, url, csrf, email), {201},
            # A sign-up whose answer was lost with the killed instance may have been committed.
            expected_on_retry={201, 409},
        )  # fmt: skip
        if signup is None:
            return
        signin = await self.send(
            "signin", next(servers), lambda url: sign_in(self.client, url, csrf, email), {200}
        )
        if signin is None:
            return
        session = session_from(signin)
        for number in range(ITEMS_AND_REFRESHES_PER_USER):
            title = f"idea {worker}-{number}"
            item = await self.send(
                "item",
                next(servers),
                lambda url, title=title: create_item(self.client, url, session, title),  # type: ignore[misc]
                {201},
            )
            if item is None:
                return
            # A refresh whose answer was lost is retried with the same cookie: within the reuse
            # interval the survivor hands back the successor the dead instance had committed.
            rotated = await self.send(
                "refresh", next(servers), lambda url: refresh(self.client, url, session), {200}
            )
            if rotated is None:
                return
            session.refresh_token = set_cookies(rotated)[REFRESH_COOKIE]
            session.access_token = rotated.json()["accessToken"]
            session.csrf = csrf_of(rotated)


def is_success(result: str) -> bool:
    return result.isdigit() and int(result) < 500


def is_5xx(result: str) -> bool:
    return result.isdigit() and int(result) >= 500


def is_cut(result: str) -> bool:
    return not result.isdigit() and result != "ConnectError"


def is_refused(result: str) -> bool:
    return result == "ConnectError"


class TestKillUnderLoad:
    async def test_killing_one_instance_under_load_leaves_the_other_serving_and_data_whole(
        self, own_cluster: Cluster, race_figures: RaceFigures
    ):
        """kill -9 of one instance mid-load: the other answers everything, no row half-written."""
        survivor, victim = own_cluster.first, own_cluster.second
        async with http_client() as client:
            run = LoadRun(client, survivor, victim, await fetch_csrf(client, survivor.base_url))
            stop = asyncio.Event()

            async def worker(index: int) -> None:
                order = [survivor, victim] if index % 2 == 0 else [victim, survivor]
                servers = itertools.cycle(order)
                while not stop.is_set():
                    await run.user_cycle(index, servers)

            tasks = [asyncio.create_task(worker(i)) for i in range(LOAD_WORKERS)]
            # Kill once the victim is busy with every kind of request, not just the first sign-ups.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOAD_MAX_SECONDS_BEFORE_KILL):
                    await run.victim_busy.wait()
            run.killed_at = time.monotonic()
            victim.kill()
            await asyncio.sleep(LOAD_SECONDS_AFTER_KILL)
            stop.set()
            await asyncio.gather(*tasks)
            health = await client.get(f"{survivor.base_url}/health")

        checks = await consistency(own_cluster.database_url)
        race_figures.record(
            "kill_under_load",
            requests=run.count(),
            victim_answered_before_kill=run.count(victim, "before_kill", result=is_success),
            survivor_answered_before_kill=run.count(survivor, "before_kill", result=is_success),
            survivor_answered_after_kill=run.count(survivor, "after_kill", result=is_success),
            survivor_5xx=run.count(survivor, result=is_5xx),
            # On the dead instance: requests cut mid-flight by the kill, then refused connections.
            victim_cut_in_flight=run.count(victim, "after_kill", result=is_cut),
            victim_refused_after_kill=run.count(victim, "after_kill", result=is_refused),
            victim_failures_by_kind=dict(
                Counter(
                    {
                        f"{operation}:{result}": n
                        for (name, _, operation, result), n in run.outcomes.items()
                        if name == victim.name and not result.isdigit()
                    }
                )
            ),
            retried_on_survivor=sum(
                run.count(survivor, operation=f"{kind}_retried") for kind in OPERATIONS
            ),
            problems=len(run.problems),
            **checks,
        )
        summary = race_figures.summary("kill_under_load")
        assert victim.process.returncode == -signal.SIGKILL, summary
        assert run.problems == [], f"{summary}\nfirst problems: {run.problems[:10]}"
        assert run.count(survivor, "after_kill", result=is_success) > 0, summary
        assert health.status_code == 200, summary
        assert checks == dict.fromkeys(CONSISTENCY_CHECKS, 0), summary
        assert "Traceback" not in survivor.log_text(), survivor.log_tail()
