"""Rate limits shared through Redis count attempts across all app instances."""

from __future__ import annotations

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
