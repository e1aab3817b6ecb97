"""S3 storage end to end, on a moto server over loopback: a task rendered by the built-in engine lands
in the bucket, its signed links stream it through the gateway or redirect to a presigned URL, a
delete empties the bucket, and /readyz follows the bucket's reachability."""

from __future__ import annotations

import base64
import io
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from tests.helpers import wait_for_status
from tests.s3 import running_moto
from vidgate.channel_config import ChannelSettings
from vidgate.config import Settings
from vidgate.runtime import open_blob_store

pytestmark = pytest.mark.anyio

QUICK_ANIMATE = ChannelSettings(name="animate", kind="animate", models=["sora-2"], options={"fps": 4})


def png_data_uri() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (320, 180), "teal").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def bucket_store(s3_settings: dict[str, Any], tmp_path: Any) -> Any:
    """The test's own view of the bucket, with the settings the gateway got."""
    return open_blob_store(Settings(data_dir=tmp_path / "observer", **s3_settings))


async def test_a_task_on_s3_storage_streamed_and_redirected(
    start_gateway, s3_settings: dict[str, Any], tmp_path: Any
) -> None:
    bucket = bucket_store(s3_settings, tmp_path)
    async with start_gateway(run_worker=True, channels=[QUICK_ANIMATE], **s3_settings) as gw:
        key = await gw.new_key()  # kept in the database: the later gateways know it too
        async with gw.client(key) as client:
            # An image: ingest stores it in the bucket, and the render reads it back from there.
            body = {"model": "sora-2", "prompt": "s3", "duration": 4, "images": [png_data_uri()]}
            r = await client.post("/v1/video/create", json=body)
            assert r.status_code == 200, r.text
            state = await wait_for_status(client, r.json()["id"], timeout=180)
            assert state["status"] == "completed", state
            ulid = state["id"].split("_")[-1]
            stored = await bucket.read_bytes(f"videos/{ulid}/video.mp4")
            assert (await bucket.read_bytes(f"inputs/{ulid}/0.png"))[:8] == b"\x89PNG\r\n\x1a\n"
            assert stored[4:8] == b"ftyp"
            # Stream mode (the default): the bytes come through the gateway, Range included.
            video = await client.get(state["video_url"])
            assert video.status_code == 200
            assert video.headers["content-type"] == "video/mp4"
            assert video.content == stored
            part = await client.get(state["video_url"], headers={"range": "bytes=100-199"})
            assert part.status_code == 206
            assert part.headers["content-range"] == f"bytes 100-199/{len(stored)}"
            assert part.content == stored[100:200]
            past = await client.get(state["video_url"], headers={"range": f"bytes={len(stored)}-"})
            assert (past.status_code, past.headers["content-range"]) == (416, f"bytes */{len(stored)}")
            head = await client.head(state["video_url"])
            assert (head.status_code, head.headers["content-length"]) == (200, str(len(stored)))
            thumb = await client.get(state["thumbnail_url"])
            assert thumb.content == await bucket.read_bytes(f"videos/{ulid}/thumbnail.webp")
            # Nothing of the task is kept on local disk.
            assert not list((gw.settings.data_dir / "media").glob(f"**/{ulid}*"))
            links = {v: path_and_query(state[f"{v}_url"]) for v in ("video", "thumbnail")}

    # The same database and bucket, served with media_delivery=redirect.
    async with start_gateway(run_worker=False, media_delivery="redirect", **s3_settings) as gw:
        async with gw.client(key) as client:
            moved = await client.get(links["video"])
            assert moved.status_code == 302
            assert moved.headers["cache-control"] == "private, no-store"
            assert moved.headers["referrer-policy"] == "no-referrer"
            location = moved.headers["location"]
            params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            assert params["X-Amz-Expires"] == "600"  # s3.presign_seconds: the link itself lives hours
            assert params["X-Amz-Credential"].startswith("AKIDVIDGATETEST/")
            assert "X-Amz-Signature" in params
            assert location.startswith(gw.settings.s3.endpoint or "")
            followed = await client.get(links["video"], follow_redirects=True)
            assert followed.status_code == 200
            assert followed.content == stored
            assert followed.headers["content-type"] == "video/mp4"  # stored with the object
            assert followed.headers["content-disposition"] == f'inline; filename="{ulid}-video.mp4"'
            thumb_moved = await client.get(links["thumbnail"], follow_redirects=True)
            assert thumb_moved.headers["content-type"] == "image/webp"
            head = await client.head(links["video"])
            assert head.status_code == 302 and head.headers["location"] != location  # HEAD is signed apart
            head = await client.head(links["video"], follow_redirects=True)
            assert (head.status_code, head.headers["content-length"]) == (200, str(len(stored)))
            # The HMAC comes first: a tampered link is refused and never redirected.
            tampered = links["video"].replace("sig=", "sig=A")
            refused = await client.get(tampered)
            assert refused.status_code == 403 and "location" not in refused.headers
            # The authenticated content route always streams: only signed links redirect.
            content = await client.get(f"/v1/videos/video_{ulid}/content")
            assert content.status_code == 200
            assert content.content == stored

    # The signed link's own expiry bounds the presigned URL when it comes sooner than the setting.
    week = {**s3_settings, "s3": {**s3_settings["s3"], "presign_seconds": 7 * 24 * 3600}}
    async with start_gateway(run_worker=False, media_delivery="redirect", **week) as gw:
        async with gw.client(key) as client:
            link_exp = int(parse_qs(urlsplit(links["video"]).query)["exp"][0])
            # The gateway reads its clock somewhere between these two readings (seconds apart on a busy host).
            before = time.time()
            moved = await client.get(links["video"])
            after = time.time()
            expires = int(parse_qs(urlsplit(moved.headers["location"]).query)["X-Amz-Expires"][0])
            assert link_exp - after - 1 <= expires <= link_exp - before + 1
            assert expires < 7 * 24 * 3600
            # Deleting the task empties its folder in the bucket.
            deleted = await client.delete(f"/v1/videos/video_{ulid}")
            assert deleted.status_code == 200, deleted.text
            assert await bucket.size(f"videos/{ulid}/video.mp4") is None
            assert await bucket.size(f"videos/{ulid}/thumbnail.webp") is None
            assert await bucket.size(f"inputs/{ulid}/0.png") is None
            gone = await client.get(links["video"])
            assert gone.status_code == 404


async def test_readyz_follows_the_bucket(start_gateway, tmp_path: Any) -> None:
    with running_moto() as moto:
        settings = moto.settings(moto.new_bucket())
        async with start_gateway(run_worker=False, **settings) as gw, gw.client(None) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["storage"] == "ok"
            moto.stop()
            started = time.monotonic()
            down = await client.get("/readyz")
            assert down.status_code == 503
            storage = down.json()["checks"]["storage"]
            assert storage == "timed out" or storage.startswith("not writable: "), storage
            assert down.json()["checks"]["database"] == "ok"
            assert time.monotonic() - started < 8  # bounded like the database check (3 s), not by retries
            moto.start()  # the same port; moto's buckets live in-process
            back = await client.get("/readyz")
            assert back.status_code == 200, back.text
            assert back.json()["checks"]["storage"] == "ok"


async def test_a_large_read_is_ranged_gets_of_one_segment_each(
    s3_settings: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GET outlives the client's timeout on a slow reader: each asks for one segment at most, the
    later ones conditional on the first one's ETag. (The real GETs still run; they are only recorded.)"""
    import obstore

    from vidgate.store import s3_blobs

    store = bucket_store(s3_settings, tmp_path)
    size = 2 * s3_blobs.SEGMENT_BYTES + 12345
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    await store.put_bytes(data, "videos/seg/video.mp4")
    asked: list[dict[str, Any]] = []
    real_get = obstore.get_async

    async def recording_get(*args: Any, **kwargs: Any) -> Any:
        asked.append(dict(kwargs.get("options") or {}))
        return await real_get(*args, **kwargs)

    monkeypatch.setattr(s3_blobs.obstore, "get_async", recording_get)
    opened = await store.open("videos/seg/video.mp4")
    body = b"".join([chunk async for chunk in opened.chunks])
    await opened.aclose()
    assert body == data
    segment = s3_blobs.SEGMENT_BYTES
    assert [o["range"] for o in asked] == [(0, segment), (segment, 2 * segment), (2 * segment, size)]
    assert "if_match" not in asked[0]
    assert asked[1]["if_match"] == asked[2]["if_match"] and asked[1]["if_match"]
