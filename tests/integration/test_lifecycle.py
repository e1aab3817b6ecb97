"""A task's life through the API and the worker: pending -> processing -> completed, and the failures."""

from __future__ import annotations

import pytest

from tests.helpers import query, scripted_channel, wait_for_status
from vidgate.clock import ManualClock
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio

BODY = {"model": "sora-2", "prompt": "a lighthouse at dusk", "duration": 10}


async def test_task_goes_pending_processing_completed_and_query_shows_each_state(start_gateway) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw:
        key = await gw.new_key()
        worker = build_worker(gw.runtime)
        async with gw.client(key) as client:
            r = await client.post("/v1/video/create", json=BODY)
            assert r.status_code == 200, r.text
            created = r.json()
            assert set(created) == {"id", "status", "status_update_time"}
            assert created["status"] == "pending"
            assert created["id"].startswith("sora-2:task_")
            task_id = created["id"]

            seen = [(await query(client, task_id))["status"]]
            for _ in range(20):
                clock.advance(1)
                if await worker.tick() == 0:
                    continue
                state = await query(client, task_id)
                seen.append(state["status"])
                if state["status"] == "completed":
                    break
            collapsed = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
            assert collapsed == ["pending", "processing", "completed"]

            final = await query(client, task_id)
            assert final["progress"] == 100
            assert final["video_url"].startswith(gw.base_url + "/files/")
            assert final["thumbnail_url"]
            assert final["error"] is None and final["fail_reason"] is None
            assert final["watermarked"] is False
            assert final["detail"]["channel"] == "scripted"
            assert final["detail"]["input"]["prompt"] == BODY["prompt"]
            assert final["status_update_time"] > created["status_update_time"]

            video = await client.get(final["video_url"])  # signed: works without a key too
            assert video.status_code == 200
            assert video.headers["content-type"] == "video/mp4"
            assert video.content[4:8] == b"ftyp"

        statuses = [
            e.to_status
            for e in await gw.runtime.tasks.events(task_id.split("_")[-1])
            if e.kind in ("created", "status")
        ]
        assert statuses == ["pending", "processing", "completed"]


async def test_upstream_failure_fails_the_task_with_its_code(start_gateway, tmp_path, make_settings) -> None:
    channel = scripted_channel(tmp_path / "up", fail_code="content_policy_violation", fail_message="refused")
    async with start_gateway(run_worker=True, channels=[channel]) as gw:
        key = await gw.new_key()
        async with gw.client(key) as client:
            task_id = (await client.post("/v1/video/create", json=BODY)).json()["id"]
            state = await wait_for_status(client, task_id)
    assert state["status"] == "failed"
    assert state["error"] == {"code": "content_policy_violation", "message": "refused"}
    assert state["fail_reason"] == "refused"
    assert state["video_url"] is None
