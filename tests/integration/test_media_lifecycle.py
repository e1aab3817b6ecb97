"""Stored media over time: previews for upstream videos, retention, and progress while rendering."""

from __future__ import annotations

import io

import anyio
import pytest
from PIL import Image

from tests.helpers import query
from vidgate.clock import ManualClock
from vidgate.config import default_channels
from vidgate.worker.service import build_worker, delete_expired_media

pytestmark = pytest.mark.anyio


async def test_upstream_videos_get_previews_and_retention_deletes_media_but_keeps_the_task(
    start_gateway,
) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock, media_retention_days=2) as gw:
        worker = build_worker(gw.runtime)
        async with gw.client(await gw.new_key()) as client:
            task_id = (await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "x"})).json()[
                "id"
            ]
            for _ in range(10):
                clock.advance(1)
                await worker.tick()
            done = await query(client, task_id)
            assert done["status"] == "completed"
            sheet = (
                await client.get(done["video_url"].replace("/video.mp4", "/spritesheet.jpg"))
            ).status_code
            assert sheet == 403  # a link is signed for one variant only
            thumb = await client.get(done["thumbnail_url"])
            assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"
            ulid = task_id.split("_")[-1]
            sprite = await client.get(f"/v1/videos/video_{ulid}/content", params={"variant": "spritesheet"})
            assert sprite.status_code == 200 and Image.open(io.BytesIO(sprite.content)).format == "JPEG"

            clock.advance(86400)
            assert await delete_expired_media(gw.runtime) == 0  # not old enough yet
            clock.advance(86400 + 1)
            assert await delete_expired_media(gw.runtime) == 1
            assert await delete_expired_media(gw.runtime) == 0

            after = await query(client, task_id)
            assert after["status"] == "completed"
            assert after["video_url"] is None and after["thumbnail_url"] is None
            assert after["spritesheet_url"] is None
            assert "retention period of 2 days" in after["detail"]["media_deleted_reason"]
            gone = await client.get(f"/v1/videos/video_{ulid}/content")
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "media_deleted"
            assert "retention" in gone.json()["error"]["message"]
    assert not (gw.settings.media_dir / "videos" / ulid).exists()


async def test_progress_moves_while_the_engine_renders(start_gateway) -> None:
    """Rendering runs in another process, so the event loop keeps serving and heartbeating:
    the query shows intermediate progress while the task is processing."""
    async with start_gateway(run_worker=True, channels=default_channels()) as gw:
        async with gw.client(await gw.new_key()) as client:
            r = await client.post(
                "/v1/video/create",
                json={"model": "sora-2", "prompt": "slow", "size": "large", "duration": 10},
            )
            task_id = r.json()["id"]
            seen: set[int] = set()
            with anyio.fail_after(300):
                while (state := await query(client, task_id))["status"] not in ("completed", "failed"):
                    if state["status"] == "processing":
                        seen.add(state["progress"])
                    await anyio.sleep(0.2)
            assert state["status"] == "completed", state
            assert any(5 <= p <= 95 for p in seen), seen
            assert (await client.get("/healthz")).status_code == 200
