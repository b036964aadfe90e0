"""The rate limits of credential grants: sign-in per account and per client address, sign-up per
address, and refresh per address.

In one process the counters live in memory; with `REDIS_URL` they live in Redis, so several app
instances behind a load balancer count the same attempts (README, "Scale-out").

When Redis fails or does not answer within `REDIS_TIMEOUT_SECONDS`, the limiter fails open to the
in-process counters: sign-in keeps working, still limited per instance, and the outage is logged
once. A rate limiter that turned a Redis outage into "nobody can sign in" would be a worse outage
than the one it guards against. Redis is tried again every `REDIS_RETRY_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from backend.app.core.errors import RateLimited

__all__ = ["REDIS_RETRY_SECONDS", "REDIS_TIMEOUT_SECONDS", "SignInRateLimiter"]

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0

_Limit = tuple[RateLimitItem, str, str]


class SignInRateLimiter:
    def __init__(
        self,
        *,
        per_account: str,
        per_address: str,
        refresh_per_address: str,
        redis_url: str | None,
        email_per_recipient: str = "5/hour",
        email_per_address: str = "30/hour",
    ):
        self._email_per_recipient: RateLimitItem = parse(email_per_recipient)
        self._email_per_address: RateLimitItem = parse(email_per_address)
        self._per_account: RateLimitItem = parse(per_account)
        self._per_address: RateLimitItem = parse(per_address)
        self._refresh_per_address: RateLimitItem = parse(refresh_per_address)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        # Our own pool, so that `close()` can release its connections at shutdown, with
        # socket timeouts so that a dead host is noticed, not waited for.
        self._redis_pool: ConnectionPool | None = None
        if redis_url:
            self._redis_pool = ConnectionPool.from_url(
                redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            storage = RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix="myideas",
                wrap_exceptions=True,
                # limits types **options as scalars; its redis-py bridge does take a pool.
                connection_pool=self._redis_pool,  # type: ignore[arg-type]
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._shared_down_until = 0.0

    async def shared_store_status(self) -> str:
        """`not_configured`, `ok`, or `down` (then this instance counts in process)."""
        if self._shared is None:
            return "not_configured"
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                answered = await self._shared.storage.check()
        except (StorageError, TimeoutError):
            answered = False
        return "ok" if answered else "down"

    async def close(self) -> None:
        if self._redis_pool is not None:
            await self._redis_pool.disconnect()

    async def hit_sign_in(self, *, email_key: str, address: str) -> None:
        """Count one sign-in attempt, successful or not, against both limits.

        Args:
            email_key: the normalized email, so that look-alike spellings share one counter.

        Raises:
            RateLimited: either limit is exhausted; `retry_after_seconds` is when both allow again.
        """
        await self._hit(
            [
                (self._per_account, "signin-account", email_key),
                (self._per_address, "auth-address", address),
            ]
        )

    async def hit_sign_up(self, *, address: str) -> None:
        """Count one sign-up attempt against the per-address limit. Raises RateLimited."""
        await self._hit([(self._per_address, "auth-address", address)])

    async def hit_refresh(self, *, address: str) -> None:
        """Count one refresh-token grant (or PKCE code exchange: a random bearer secret too)
        from a client address. Raises RateLimited.

        Its own budget, as GoTrue's `RATE_LIMIT_TOKEN_REFRESH`: a signed-in browser refreshes on
        every reload and in every tab, which must not eat into the sign-in budget; guessing
        tokens (each guess a write transaction) must still stop.
        """
        await self._hit([(self._refresh_per_address, "refresh-address", address)])

    async def hit_email(self, *, recipient_key: str, address: str) -> None:
        """Count one request that may send a lifecycle mail, for known and unknown recipients
        alike (so a refusal reveals nothing), per recipient and per client address.

        Raises:
            RateLimited.
        """
        await self._hit(
            [
                (self._email_per_recipient, "email-recipient", recipient_key),
                (self._email_per_address, "email-address", address),
            ]
        )

    async def _hit(self, limits: list[_Limit]) -> None:
        limiter = self._limiter()
        if limiter is not self._local:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                    refused = await _refused(limiter, limits)
            except (StorageError, TimeoutError) as exc:
                self._shared_failed(exc)
                refused = await _refused(self._local, limits)
            else:
                self._shared_answered()
        else:
            refused = await _refused(limiter, limits)
        if refused:
            raise RateLimited(retry_after_seconds=max(refused))

    def _limiter(self) -> MovingWindowRateLimiter:
        if self._shared is None or time.monotonic() < self._shared_down_until:
            return self._local
        return self._shared

    def _shared_failed(self, exc: Exception) -> None:
        if not self._shared_down_until:
            logger.warning(
                "rate-limit store unreachable; counting in this process until it is back",
                extra={"error": type(exc).__name__},
            )
        self._shared_down_until = time.monotonic() + REDIS_RETRY_SECONDS

    def _shared_answered(self) -> None:
        if self._shared_down_until:
            logger.warning("rate-limit store is back; counting in it again")
        self._shared_down_until = 0.0


async def _refused(limiter: MovingWindowRateLimiter, limits: list[_Limit]) -> list[int]:
    """Hit every limit (no short-circuit, so every attempt counts toward each); returns the
    seconds to wait for each limit that refused."""
    refused = [limit for limit in limits if not await limiter.hit(*limit)]
    now = time.time()
    waits = []
    for limit in refused:
        stats = await limiter.get_window_stats(*limit)
        waits.append(max(1, math.ceil(stats.reset_time - now)))
    return waits
