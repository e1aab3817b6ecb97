"""Per-key request rates on /v1/*: every request counts against the key's requests per minute, and a
create (or remix) also against its creates per minute.

The strategy is `limits`' sliding window counter: two counters per key and window, so each hit costs
the same whatever the limit (the moving window keeps one entry per hit). The counters live in this
process's memory, or in Redis when `redis_url` is set, so that every API process of a deployment
counts together. Trouble with Redis never refuses a request: the limiter fails open, warns at most
every 30 s, and leaves Redis alone for a second before trying it again (so a dead Redis costs at most
one connect attempt per second, not one per request).

The cap on tasks in flight is not here: it is checked where the task is inserted (`TaskStore.create`),
in the same transaction, which is the only place it can be exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from vidgate import metrics
from vidgate.config import Settings
from vidgate.errors import RateLimited
from vidgate.store.keys import ApiKey

if TYPE_CHECKING:
    # redis is imported only when `redis_url` is set (`build_rate_limiter`): every process start would
    # otherwise pay for it.
    from redis.asyncio import ConnectionPool

log = structlog.get_logger("vidgate.ratelimit")

Limit = Literal["requests", "creates"]
WARN_EVERY_S = 30.0
SKIP_REDIS_AFTER_ERROR_S = 1.0
# Connect and per-command timeouts: a Redis that hangs must not hang the requests it would count.
REDIS_TIMEOUT_S = 0.5
REDIS_KEY_PREFIX = "vidgate:limits"


def effective_limit(override: int | None, default: int | None) -> int | None:
    """A key's limit: its own (0 = unlimited for this key), else the setting's; None = unlimited."""
    if override is None:
        return default
    return override or None


def active_task_cap(settings: Settings, key: ApiKey) -> int | None:
    """How many tasks `key` may have pending or processing at once (None: any number)."""
    return effective_limit(key.max_active_tasks, settings.max_active_tasks)


class RateLimiter:
    """The per-key request and create limits of one API process, over a `limits` storage.

    `window_seconds` is a minute in production; tests shorten it so that a window passes quickly.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        requests_per_minute: int | None,
        creates_per_minute: int | None,
        window_seconds: int = 60,
        pool: ConnectionPool | None = None,
        storage_errors: tuple[type[Exception], ...] = (),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.requests_per_minute = requests_per_minute
        self.creates_per_minute = creates_per_minute
        self.window_seconds = window_seconds
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._pool = pool
        # What the storage raises when it cannot answer (Redis's errors with a Redis storage): the request
        # then goes unlimited for a while (`_storage_failed`), rather than failing.
        self._storage_errors: tuple[type[Exception], ...] = (OSError, TimeoutError, *storage_errors)
        self._monotonic = monotonic
        self._items: dict[int, RateLimitItem] = {}
        self._skip_until = 0.0
        self._warned_at = -math.inf

    async def check(self, key: ApiKey, *, create: bool) -> None:
        """Count this request against `key`'s limits; RateLimited (429) when one is used up."""
        await self._hit("requests", effective_limit(key.requests_per_minute, self.requests_per_minute), key)
        if create:
            await self._hit("creates", effective_limit(key.creates_per_minute, self.creates_per_minute), key)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        if isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            self.storage.timer.cancel()  # its expiry sweep, if one is running

    async def _hit(self, limit: Limit, amount: int | None, key: ApiKey) -> None:
        if amount is None or self._monotonic() < self._skip_until:
            return
        item = self._item(amount)
        try:
            if await self._strategy.hit(item, limit, key.id):
                return
            stats = await self._strategy.get_window_stats(item, limit, key.id)
        except self._storage_errors as exc:
            self._storage_failed(exc)
            return
        reset_s = max(0.0, stats.reset_time - time.time())
        retry_after = max(1, math.ceil(reset_s))
        metrics.RATE_LIMITED.labels(limit=limit).inc()
        log.info("rate limited", key_id=key.id, limit=limit, amount=amount, retry_after=retry_after)
        per = "minute" if self.window_seconds == 60 else f"{self.window_seconds} s"
        raise RateLimited(
            f"Rate limit reached for this API key: {amount} {limit} per {per}. Try again in {retry_after}s.",
            code="rate_limit_exceeded",
            headers={
                "retry-after": str(retry_after),
                "retry-after-ms": str(max(1, math.ceil(reset_s * 1000))),
                "x-ratelimit-limit-requests": str(amount),
                "x-ratelimit-remaining-requests": str(stats.remaining),
                "x-ratelimit-reset-requests": _duration(reset_s),
            },
        )

    def _item(self, amount: int) -> RateLimitItem:
        item = self._items.get(amount)
        if item is None:
            item = self._items[amount] = RateLimitItemPerSecond(amount, self.window_seconds)
        return item

    def _storage_failed(self, exc: Exception) -> None:
        now = self._monotonic()
        self._skip_until = now + SKIP_REDIS_AFTER_ERROR_S
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "rate-limit storage unreachable: requests are not limited until it answers",
                error=f"{type(exc).__name__}: {exc}",
                warn_every_s=WARN_EVERY_S,
            )


def _duration(seconds: float) -> str:
    """OpenAI's style for x-ratelimit-reset-*: `850ms`, `3s`, `1m5s`."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _limits_uri(redis_url: str) -> str:
    """`limits` picks its asyncio storage by an `async+` scheme; a unix socket is `async+redis+unix`."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter the settings ask for. Call it inside the running event loop: the memory storage
    schedules its expiry sweeps there, and the Redis pool's connections belong to it."""
    pool: ConnectionPool | None = None
    storage: Storage
    storage_errors: tuple[type[Exception], ...] = ()
    if settings.redis_url:
        from redis.asyncio import ConnectionPool
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        # Our own pool: we can close it (limits' storage has no close), and its timeouts and single
        # retry (a pooled connection that Redis closed meanwhile) keep a failing Redis cheap.
        pool = ConnectionPool.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1),
        )
        options: dict[str, Any] = {
            "implementation": "redispy",
            "key_prefix": REDIS_KEY_PREFIX,
            "connection_pool": pool,
        }
        storage = cast(Storage, storage_from_string(_limits_uri(settings.redis_url), **options))
        storage_errors = (RedisError,)
    else:
        storage = MemoryStorage()
    return RateLimiter(
        storage,
        requests_per_minute=settings.requests_per_minute,
        creates_per_minute=settings.creates_per_minute,
        pool=pool,
        storage_errors=storage_errors,
    )
