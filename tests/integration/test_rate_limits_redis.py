"""Rate limits counted in a real redis-server: two gateways share one count, and a Redis that goes away
never refuses a request (the limiter fails open, warns, and counts again once Redis is back)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
import structlog

from tests.integration.test_rate_limits import before_the_minute_ends
from tests.redis_server import running_redis

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


async def test_two_gateways_share_one_limit(start_gateway, redis_server) -> None:
    redis_server.flush()
    async with start_gateway(run_worker=False, redis_url=redis_server.url, requests_per_minute=4) as one:
        async with start_gateway(run_worker=False, redis_url=redis_server.url, requests_per_minute=4) as two:
            assert one.runtime is not two.runtime
            assert type(one.runtime.rate_limiter.storage).__name__ == "RedisStorage"
            key = await one.new_key()
            await before_the_minute_ends()
            async with one.client(key) as a, two.client(key) as b:
                statuses = [(await c.get("/v1/videos")).status_code for c in (a, b, a, b, a, b)]
                assert statuses == [200, 200, 200, 200, 429, 429]


async def test_redis_down_fails_open_then_counts_again(start_gateway, tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as redis:
        async with start_gateway(run_worker=False, redis_url=redis.url, requests_per_minute=2) as gw:
            await before_the_minute_ends(8)
            async with gw.client(await gw.new_key()) as c:
                assert [(await c.get("/v1/videos")).status_code for _ in range(3)] == [200, 200, 429]
                redis.stop()
                with structlog.testing.capture_logs() as logs:
                    for _ in range(10):
                        started = time.monotonic()
                        assert (await c.get("/v1/videos")).status_code == 200
                        assert time.monotonic() - started < 2  # no long retries against a dead Redis
                warnings = [e for e in logs if e["log_level"] == "warning"]
                assert len(warnings) == 1, logs  # at most one warning per 30 s
                assert "rate-limit storage unreachable" in warnings[0]["event"]
                assert redis.url not in str(logs)
                redis.start()  # the same port; its counts are gone (no persistence)
                deadline = time.monotonic() + 10
                statuses: list[int] = []
                while 429 not in statuses:
                    # The limiter leaves Redis alone for a second after an error, then counts again.
                    assert time.monotonic() < deadline, statuses
                    statuses.append((await c.get("/v1/videos")).status_code)
                    await anyio.sleep(0.1)
                assert statuses[-3:] == [200, 200, 429]
