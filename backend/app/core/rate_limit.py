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
from redis.asyncio import ConnectionPool

from backend.app.core.errors import RateLimited

__all__ = ["SignInRateLimiter"]


class SignInRateLimiter:
    def __init__(self, *, per_account: str, per_address: str, redis_url: str | None):
        self._per_account: RateLimitItem = parse(per_account)
        self._per_address: RateLimitItem = parse(per_address)
        # Our own pool, so that `close()` can release its connections at shutdown.
        self._redis_pool = ConnectionPool.from_url(redis_url) if redis_url else None
        storage: Storage = (
            RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix="myideas",
                # limits types **options as scalars; its redis-py bridge does take a pool.
                connection_pool=self._redis_pool,  # type: ignore[arg-type]
            )
            if redis_url
            else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(storage)

    async def close(self) -> None:
        if self._redis_pool is not None:
            await self._redis_pool.disconnect()

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
