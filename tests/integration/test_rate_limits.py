"""Per-key rate limits over real HTTP, counted in memory (one gateway process): requests per minute,
creates per minute, per-key overrides; 429 in OpenAI's envelope with Retry-After; what is never limited."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest

from vidgate import metrics
from vidgate.clock import SystemClock
from vidgate.ratelimit import RateLimiter
from vidgate.signing import sign
from vidgate.store.keys import KeyStore
from vidgate.testing.resolver import PUBLIC_TEST_HOSTS, StaticResolver

pytestmark = pytest.mark.anyio
BODY = {"model": "sora-2", "prompt": "a red kite"}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: these limits are counted outside the database (test_active_task_cap.py covers both)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


def assert_envelope(r: httpx.Response, status: int, *, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    return error


async def before_the_minute_ends(margin_s: float = 5) -> None:
    """Per-minute windows start on the minute (UTC). A burst that straddles a window's start sees part
    of the previous window's count fade, which lets one extra request through; exact counts are only
    asserted within one window, so start the burst with `margin_s` of the window left."""
    left = 60 - time.time() % 60
    if left < margin_s:
        await anyio.sleep(left + 0.05)


def assert_rate_limited(r: httpx.Response, *, limit: int, message: str) -> dict[str, Any]:
    error = assert_envelope(r, 429, code="rate_limit_exceeded")
    assert error["type"] == "requests"
    assert message in error["message"]
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert f"Try again in {retry_after}s" in error["message"]
    assert 1 <= int(r.headers["retry-after-ms"]) <= 60_000
    assert r.headers["x-ratelimit-limit-requests"] == str(limit)
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert re.fullmatch(r"\d+ms|\d+s|1m0s", r.headers["x-ratelimit-reset-requests"])
    return error


async def key_with(gateway: Any, **limits: int | None) -> str:
    keys = KeyStore(gateway.runtime.engine)
    now = SystemClock().now_ms()
    _, plaintext = await keys.create(name="limited", is_admin=False, now=now, limits=limits)
    return plaintext


@asynccontextmanager
async def limited_gateway(start_gateway: Any, **settings: Any) -> AsyncIterator[Any]:
    async with start_gateway(run_worker=False, **settings) as gw:
        yield gw


def refusals(limit: str) -> float:
    """The `vidgate_rate_limited_total` counter of this process (the gateways here run in it)."""
    from prometheus_client import REGISTRY

    metrics.RATE_LIMITED  # noqa: B018 - built on first use
    return REGISTRY.get_sample_value("vidgate_rate_limited_total", {"limit": limit}) or 0.0


async def test_requests_past_the_limit_get_429_in_the_openai_envelope(start_gateway) -> None:
    async with limited_gateway(start_gateway, requests_per_minute=3) as gw:
        key = await gw.new_key()
        counted_before = refusals("requests")
        await before_the_minute_ends()
        async with gw.client(key) as c:
            for _ in range(3):
                assert (await c.get("/v1/videos")).status_code == 200
            refused = await c.get("/v1/videos")
            assert_rate_limited(refused, limit=3, message="3 requests per minute")
            # Every route under /v1 counts, creates and reads alike.
            assert_rate_limited(await c.post("/v1/video/create", json=BODY), limit=3, message="requests")
            assert_rate_limited(await c.get("/v1/video/query", params={"id": "x"}), limit=3, message="")
        assert refusals("requests") == counted_before + 3
        # The limit is the key's, not the gateway's.
        async with gw.client(await gw.new_key()) as other:
            assert (await other.get("/v1/videos")).status_code == 200


async def test_the_window_recovers(start_gateway) -> None:
    async with limited_gateway(start_gateway) as gw:
        # A 2-second window instead of a minute (the limiter takes any window; settings say minutes).
        limiter = RateLimiter(gw.runtime.rate_limiter.storage, requests_per_minute=2, creates_per_minute=None,
                              window_seconds=2)  # fmt: skip
        gw.runtime.rate_limiter = limiter
        async with gw.client(await gw.new_key()) as c:
            statuses = []
            while 429 not in statuses:
                refused = await c.get("/v1/videos")
                statuses.append(refused.status_code)
                # At most one window start falls in a burst this short, so at most 2 + 2 pass.
                assert len(statuses) <= 5, statuses
            refused_at = time.monotonic()
            again = await c.get("/v1/videos")
            # No instant recovery: before the time the refusal named, the key is still used up. (On a
            # slow machine that time may already have passed, when a window ended in between.)
            if (time.monotonic() - refused_at) * 1000 < int(refused.headers["retry-after-ms"]) - 100:
                assert again.status_code == 429
            while (r := await c.get("/v1/videos")).status_code == 429:
                assert time.monotonic() - refused_at < 2 * 2 + 1, "the window never let a request through"
                await anyio.sleep(max(0.05, int(r.headers["retry-after-ms"]) / 1000))
            assert r.status_code == 200


async def test_creates_have_their_own_limit(start_gateway) -> None:
    async with limited_gateway(start_gateway, requests_per_minute=20, creates_per_minute=2) as gw:
        await before_the_minute_ends()
        async with gw.client(await gw.new_key()) as c:
            for _ in range(2):
                assert (await c.post("/v1/video/create", json=BODY)).status_code == 200
            assert_rate_limited(
                await c.post("/v1/video/create", json=BODY), limit=2, message="2 creates per minute"
            )
            assert_rate_limited(
                await c.post("/v1/videos", json={"prompt": "x"}), limit=2, message="2 creates per minute"
            )
            # Reads are still within the request limit (the 4 creates counted as requests too).
            for _ in range(20 - 4):
                assert (await c.get("/v1/videos")).status_code == 200
            assert_rate_limited(await c.get("/v1/videos"), limit=20, message="20 requests per minute")


async def test_a_keys_own_limits_override_the_defaults(start_gateway) -> None:
    async with limited_gateway(start_gateway, requests_per_minute=2) as gw:
        await before_the_minute_ends()
        async with gw.client(await key_with(gw, requests_per_minute=4)) as own:
            assert [(await own.get("/v1/videos")).status_code for _ in range(5)] == [200] * 4 + [429]
        async with gw.client(await key_with(gw, requests_per_minute=0)) as unlimited:
            assert {(await unlimited.get("/v1/videos")).status_code for _ in range(8)} == {200}
        async with gw.client(await key_with(gw, creates_per_minute=1)) as default_requests:
            assert [(await default_requests.get("/v1/videos")).status_code for _ in range(3)] == [
                200,
                200,
                429,
            ]


async def test_a_missing_or_wrong_key_is_401_never_429(start_gateway) -> None:
    async with limited_gateway(start_gateway, requests_per_minute=1) as gw:
        key = await gw.new_key()
        await before_the_minute_ends()
        async with gw.client(key) as c:
            assert (await c.get("/v1/videos")).status_code == 200
            assert (await c.get("/v1/videos")).status_code == 429
        for _ in range(3):
            async with gw.client(None) as anon:
                assert_envelope(await anon.get("/v1/videos"), 401, code="invalid_api_key")
            async with gw.client("vg-not-a-real-key") as wrong:
                assert_envelope(await wrong.get("/v1/videos"), 401, code="invalid_api_key")


async def test_media_links_and_health_are_never_limited(start_gateway) -> None:
    async with limited_gateway(start_gateway, requests_per_minute=2) as gw:
        key = await gw.new_key()
        await before_the_minute_ends()
        async with gw.client(key) as c:
            created = (await c.post("/v1/videos", json={"prompt": "x"})).json()
            assert (await c.get("/v1/videos")).status_code == 200
            assert (await c.get("/v1/videos")).status_code == 429
            task_id = created["id"].removeprefix("video_")
            expires = int(time.time()) + 3600
            sig = sign(gw.settings.signing_key(), task_id, "video", expires)
            for _ in range(5):
                # A valid signature for a task with no video yet: 404 media_not_ready, never 429.
                media = await c.get(f"/files/{task_id}/video.mp4", params={"exp": expires, "sig": sig})
                assert_envelope(media, 404, code="media_not_ready")
                assert (await c.get("/healthz")).status_code == 200
                assert (await c.get("/readyz")).status_code == 200


# The SDK marks every video method deprecated (OpenAI's Sora API shut down); silence exactly that warning.
@pytest.mark.filterwarnings("ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning")
async def test_the_openai_sdk_raises_rate_limit_error(start_gateway) -> None:
    async with limited_gateway(start_gateway, requests_per_minute=1) as gw:
        sdk = openai.AsyncOpenAI(base_url=f"{gw.base_url}/v1", api_key=await gw.new_key(), max_retries=0)
        await before_the_minute_ends()
        async with sdk:
            await sdk.videos.list()
            with pytest.raises(openai.RateLimitError) as raised:
                await sdk.videos.list()
        assert raised.value.status_code == 429
        assert raised.value.code == "rate_limit_exceeded"
        assert int(raised.value.response.headers["retry-after"]) >= 1


async def test_nothing_is_limited_by_default(start_gateway) -> None:
    async with start_gateway(run_worker=False, resolver=StaticResolver(PUBLIC_TEST_HOSTS)) as gw:
        async with gw.client(await gw.new_key()) as c:
            for _ in range(30):
                assert (await c.get("/v1/videos")).status_code == 200
