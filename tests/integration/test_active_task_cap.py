"""`max_active_tasks`: the cap on a key's tasks pending or processing, checked in the transaction that
inserts the task, so it holds exactly under concurrent creates, on SQLite and on PostgreSQL, from one
process or several."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.integration.test_rate_limits import refusals
from vidgate.clock import SystemClock
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import TaskStatus, WatermarkMode
from vidgate.errors import RateLimited
from vidgate.store import db
from vidgate.store.keys import KeyStore
from vidgate.store.tasks import TaskStore

pytestmark = pytest.mark.anyio
BODY = {"model": "sora-2", "prompt": "a red kite"}
SPEC = VideoSpec("sora-2", "capped", (), 720, 1280, 10, WatermarkMode.PREFER_CLEAN)


def assert_cap_refusal(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "too_many_active_tasks"
    assert error["type"] == "requests"
    assert "3 tasks pending or processing" in error["message"]
    assert r.headers["retry-after"] == "5"


async def test_concurrent_creates_never_pass_the_cap(start_gateway) -> None:
    async with start_gateway(run_worker=False, max_active_tasks=3) as gw:
        counted_before = refusals("active_tasks")
        async with gw.client(await gw.new_key()) as c:
            answers = await asyncio.gather(*(c.post("/v1/video/create", json=BODY) for _ in range(16)))
            created = [r for r in answers if r.status_code == 200]
            assert len(created) == 3, [r.status_code for r in answers]
            assert refusals("active_tasks") == counted_before + 13
            for r in answers:
                if r.status_code != 200:
                    assert_cap_refusal(r)
            # Both dialects share the cap.
            assert_cap_refusal(await c.post("/v1/videos", json={"prompt": "x"}))
            # A finished task frees its place: cancel one (DELETE cancels an unfinished task).
            first = created[0].json()["id"]
            assert (await c.delete(f"/v1/videos/{first}")).status_code == 200
            assert (await c.post("/v1/videos", json={"prompt": "x"})).status_code == 200
            assert_cap_refusal(await c.post("/v1/video/create", json=BODY))
        # The cap is per key.
        async with gw.client(await gw.new_key()) as other:
            assert (await other.post("/v1/video/create", json=BODY)).status_code == 200


async def test_an_idempotent_replay_at_the_cap_returns_its_task(start_gateway) -> None:
    async with start_gateway(run_worker=False, max_active_tasks=1) as gw:
        async with gw.client(await gw.new_key()) as c:
            first = await c.post("/v1/video/create", json=BODY, headers={"idempotency-key": "once"})
            assert first.status_code == 200
            replay = await c.post("/v1/video/create", json=BODY, headers={"idempotency-key": "once"})
            assert replay.status_code == 200
            assert replay.json()["id"] == first.json()["id"]
            refused = await c.post("/v1/video/create", json=BODY, headers={"idempotency-key": "twice"})
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_active_tasks"


async def test_a_refused_upload_leaves_no_file(start_gateway) -> None:
    from tests.integration.test_openai_sdk import reference_png

    async with start_gateway(run_worker=False, max_active_tasks=1) as gw:
        async with gw.client(await gw.new_key()) as c:
            assert (await c.post("/v1/video/create", json=BODY)).status_code == 200
            upload = {"input_reference": ("ref.png", reference_png(64, 96), "image/png")}
            r = await c.post("/v1/videos", data={"prompt": "x", "size": "720x1280"}, files=upload)
            assert r.status_code == 429, r.text
        uploads = gw.settings.media_dir / "uploads"
        assert not uploads.exists() or not any(uploads.iterdir())


async def test_the_cap_holds_across_processes(db_url: str) -> None:
    """Two engines stand for two API processes: their creates still never pass the cap together."""
    await db.upgrade(db_url)
    engines = [db.create_engine(db_url), db.create_engine(db_url)]
    try:
        now = SystemClock().now_ms()
        owner = (await KeyStore(engines[0]).create(name="capped", is_admin=False, now=now))[0].id
        stores = [TaskStore(e) for e in engines]

        async def create(i: int) -> Any:
            store = stores[i % 2]
            try:
                return await store.create(
                    SPEC, owner=owner, dialect="unified", now=now, deadline_ms=60_000, max_active_tasks=4
                )
            except RateLimited as exc:
                return exc

        outcomes = await asyncio.gather(*(create(i) for i in range(24)))
        created = [o for o in outcomes if not isinstance(o, RateLimited)]
        assert len(created) == 4
        assert all(o.code == "too_many_active_tasks" for o in outcomes if isinstance(o, RateLimited))
        assert all(t.status is TaskStatus.PENDING for t in created)
        # Without the cap, the same owner may create more.
        await stores[0].create(SPEC, owner=owner, dialect="unified", now=now, deadline_ms=60_000)
    finally:
        for engine in engines:
            await engine.dispose()
