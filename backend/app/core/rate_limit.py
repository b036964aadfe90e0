"""Sign-in and sign-up rate limits, per account and per client address.

In one process the counters live in memory; with `REDIS_URL` they live in Redis, so several app
instances behind a load balancer count the same attempts (DESIGN.md §7).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from backend.app.core.errors import RateLimited

__all__ = ["SignInRateLimiter"]


class SignInRateLimiter:
    def __init__(self, *, per_account: str, per_address: str, redis_url: str | None):
        self._per_account: RateLimitItem = parse(per_account)
        self._per_address: RateLimitItem = parse(per_address)
        self.storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy", key_prefix="myideas")
            if redis_url
            else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self.storage)

    async def hit_sign_in(self, *, email: str, address: str) -> None:
        """Count one sign-in attempt, successful or not, against both limits.

        Raises:
            RateLimited: either limit is exhausted; `retry_after_seconds` is when both allow again.
        """
        await self._hit(
            [
                (self._per_account, "signin-account", email.lower()),
                (self._per_address, "auth-address", address),
            ]
        )

    async def hit_sign_up(self, *, address: str) -> None:
        """Count one sign-up attempt against the per-address limit. Raises RateLimited."""
        await self._hit([(self._per_address, "auth-address", address)])

    async def _hit(self, limits: list[tuple[RateLimitItem, str, str]]) -> None:
        # Both limits are always hit (no short-circuit), so every attempt counts toward each.
        refused = [
            (item, scope, key)
            for item, scope, key in limits
            if not await self._limiter.hit(item, scope, key)
        ]
        if not refused:
            return
        now = time.time()
        waits = []
        for item, scope, key in refused:
            stats = await self._limiter.get_window_stats(item, scope, key)
            waits.append(max(1, math.ceil(stats.reset_time - now)))
        raise RateLimited(retry_after_seconds=max(waits))
