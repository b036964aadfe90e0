"""Refresh-token rotation and replay (ASVS 5.0 V10.4.5, V7.4.1) as a Hypothesis state machine.

Several users open sessions, refresh, replay rotated tokens inside and outside the reuse interval,
present unknown tokens and log out, in any order. A model says which refresh token of each session
must work; after every step the database is checked against it (exactly the current token of each
live session is unspent, every other known token is dead) and each session's latest access token
must pass `/auth/me` exactly while its session lives. Time is a fake clock under the provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from backend.app.db.tables import identity_refresh_tokens, identity_sessions
from backend.app.identity.embedded import provider, store
from backend.app.main import create_app
from backend.tests.helpers import PASSWORD, unique_email

REUSE_INTERVAL = 10
USERS = 2


@dataclass
class ModelSession:
    user: str
    tokens: list[str]
    rotated_at: dict[str, datetime] = field(default_factory=dict)
    access_token: str = ""
    alive: bool = True

    @property
    def current(self) -> str:
        return self.tokens[-1]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def run_machine(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    for module in (provider, store):  # the provider and its store tell the time
        monkeypatch.setattr(module, "utcnow", clock)
    runner = asyncio.Runner()
    app = create_app(make_settings(refresh_reuse_interval_seconds=REUSE_INTERVAL))
    lifespan = app.router.lifespan_context(app)
    runner.run(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    services = app.state.services

    async def signup(email: str) -> None:
        csrf = (await client.get("/auth/csrf")).json()["csrfToken"]
        response = await client.post(
            "/auth/signup",
            json={"email": email, "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 201, response.text
        client.cookies.clear()

    emails = [unique_email() for _ in range(USERS)]
    for email in emails:
        runner.run(signup(email))

    async def post(path: str, refresh_token: str | None, body: Any = None) -> httpx.Response:
        """A browser whose jar holds `refresh_token`, with the CSRF token of its cookies."""
        nonce = secrets.token_urlsafe(16)
        cookie = f"myideas_csrf={services.csrf.cookie_value(nonce, refresh_token)}"
        if refresh_token is not None:
            cookie += f"; sb_refresh_token={refresh_token}"
        headers = {"Cookie": cookie, "X-CSRF-Token": services.csrf.token_for(nonce)}
        try:
            return await client.post(path, json=body, headers=headers)
        finally:
            client.cookies.clear()

    class RefreshMachine(RuleBasedStateMachine):
        sessions = Bundle("sessions")

        def __init__(self) -> None:
            super().__init__()
            self.model: list[ModelSession] = []

        def call(self, coroutine: Any) -> Any:
            return runner.run(coroutine)

        @initialize(target=sessions, user=st.integers(0, USERS - 1))
        def first_sign_in(self, user: int) -> ModelSession:
            return self.open_session(user)

        @rule(target=sessions, user=st.integers(0, USERS - 1))
        def sign_in(self, user: int) -> ModelSession:
            return self.open_session(user)

        def open_session(self, user: int) -> ModelSession:
            response = self.call(
                post("/auth/signin", None, {"email": emails[user], "password": PASSWORD})
            )
            assert response.status_code == 200, response.text
            session = ModelSession(
                user=emails[user],
                tokens=[response.cookies["sb_refresh_token"]],
                access_token=response.json()["accessToken"],
            )
            self.model.append(session)
            return session

        @rule(session=sessions)
        def refresh_current(self, session: ModelSession) -> None:
            response = self.call(post("/auth/refresh", session.current))

            if not session.alive:
                assert response.json()["code"] == "refresh_token_invalid"
                return
            assert response.status_code == 200, response.text
            session.rotated_at[session.current] = clock.now
            session.tokens.append(response.cookies["sb_refresh_token"])
            session.access_token = response.json()["accessToken"]

        @precondition(lambda self: any(len(s.tokens) > 1 for s in self.model))
        @rule(data=st.data())
        def replay_rotated(self, data: st.DataObject) -> None:
            session = data.draw(st.sampled_from([s for s in self.model if len(s.tokens) > 1]))
            old = data.draw(st.sampled_from(session.tokens[:-1]))

            response = self.call(post("/auth/refresh", old))

            if not session.alive:
                assert response.status_code == 401
                assert response.json()["code"] == "refresh_token_invalid"
            elif clock.now - session.rotated_at[old] <= timedelta(seconds=REUSE_INTERVAL):
                # Two tabs: the successor already issued, not a new one.
                assert response.status_code == 200, response.text
                assert response.cookies["sb_refresh_token"] == session.current
                session.access_token = response.json()["accessToken"]
            else:
                assert response.status_code == 401
                assert response.json()["code"] == "refresh_token_reused"
                session.alive = False

        @rule(session=sessions, token_index=st.integers(min_value=0))
        def logout(self, session: ModelSession, token_index: int) -> None:
            """Any token of a session, even a rotated one, names it: logout ends it."""
            token = session.tokens[token_index % len(session.tokens)]

            response = self.call(post("/auth/logout", token))

            assert response.status_code == 200
            session.alive = False

        @rule()
        def unknown_token(self) -> None:
            response = self.call(post("/auth/refresh", secrets.token_urlsafe(32)))

            assert response.json()["code"] == "refresh_token_invalid"

        @rule(seconds=st.sampled_from([3, 4, 11]))
        def time_passes(self, seconds: int) -> None:
            clock.now += timedelta(seconds=seconds)

        @invariant()
        def exactly_the_current_tokens_of_live_sessions_work(self) -> None:
            rows = self.call(
                services.database.read(
                    lambda conn: conn.execute(
                        sa.select(
                            identity_refresh_tokens.c.token_hash,
                            identity_refresh_tokens.c.revoked_at.is_(None).label("unspent"),
                            identity_sessions.c.revoked_at.is_(None).label("session_live"),
                        ).select_from(identity_refresh_tokens.join(identity_sessions))
                    ).all()
                )
            )
            working = {row.token_hash for row in rows if row.unspent and row.session_live}
            for session in self.model:
                for token in session.tokens:
                    expected = session.alive and token == session.current
                    digest = hashlib.sha256(token.encode()).hexdigest()
                    assert (digest in working) == expected, (session.tokens.index(token), session)

        @invariant()
        def access_tokens_work_exactly_while_their_session_lives(self) -> None:
            for session in self.model:
                response = self.call(
                    client.get(
                        "/auth/me", headers={"Authorization": f"Bearer {session.access_token}"}
                    )
                )
                assert response.status_code == (200 if session.alive else 401), response.text

    try:
        run_state_machine_as_test(
            RefreshMachine,
            settings=settings(
                max_examples=25,
                stateful_step_count=20,
                derandomize=True,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        runner.run(client.aclose())
        runner.run(lifespan.__aexit__(None, None, None))
        runner.close()


def test_refresh_rotation_and_replay_state_machine(make_settings, monkeypatch):
    """Exactly the right tokens work after every step, on SQLite and on PostgreSQL."""
    run_machine(make_settings, monkeypatch)
