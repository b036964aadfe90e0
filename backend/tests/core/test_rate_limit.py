"""Rate limits shared through Redis count attempts across all app instances."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from backend.tests.helpers import unique_email

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.mark.redis
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestSharedRateLimit:
    async def test_attempts_on_two_instances_share_one_per_account_budget(self, make_api):
        """Three attempts on instance A and one on instance B: the fourth is refused on B."""
        settings = {"redis_url": REDIS_URL, "rate_limit_signin_per_account": "3/minute"}
        first, second = await make_api(**settings), await make_api(**settings)
        email = unique_email()  # a fresh key: nothing from earlier runs counts against it

        statuses = [(await api.signin(email)).status_code for api in (first, first, first, second)]

        assert statuses == [401, 401, 401, 429]


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A Redis URL whose server accepts connections and never answers: a hung host."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


# Nothing listens on port 1 on loopback: every connection is refused at once.
REFUSED_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
class TestRateLimitStoreOutage:
    """Redis gone or hung: sign-in keeps working, limited in process, and says so once."""

    async def test_signup_and_signin_work_while_the_store_refuses_connections(self, make_api):
        api = await make_api(redis_url=REFUSED_REDIS_URL)

        await _assert_signup_and_signin_work(api)

    async def test_signup_and_signin_work_while_the_store_hangs(self, make_api, silent_redis):
        api = await make_api(redis_url=silent_redis)

        await _assert_signup_and_signin_work(api)

    async def test_limits_still_hold_in_process_while_the_store_is_down(self, make_api):
        api = await make_api(redis_url=REFUSED_REDIS_URL, rate_limit_signin_per_account="3/minute")
        email = unique_email()

        statuses = [(await api.signin(email)).status_code for _ in range(4)]

        assert statuses == [401, 401, 401, 429]

    async def test_the_outage_is_logged_once(self, make_api, caplog):
        api = await make_api(redis_url=REFUSED_REDIS_URL)
        caplog.set_level(logging.WARNING, logger="backend.app.core.rate_limit")

        for _ in range(3):
            await api.signin(unique_email())

        outages = [r for r in caplog.records if "rate-limit store unreachable" in r.getMessage()]
        assert len(outages) == 1

    async def test_health_says_which_dependency_is_down(self, make_api):
        api = await make_api(redis_url=REFUSED_REDIS_URL)

        response = await api.client.get("/health")

        assert response.status_code == 200
        assert response.json() == {
            "status": "degraded",
            "database": "ok",
            "rateLimitStore": "down",
        }

    @pytest.mark.redis
    async def test_health_with_a_reachable_store_is_ok(self, make_api):
        api = await make_api(redis_url=REDIS_URL)

        response = await api.client.get("/health")

        assert response.json()["rateLimitStore"] == "ok"


async def _assert_signup_and_signin_work(api) -> None:
    email = unique_email()

    signup = await api.signup(email)
    signin = await api.signin(email)

    assert signup.status_code == 201, signup.text
    assert signin.status_code == 200, signin.text
