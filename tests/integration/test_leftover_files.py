"""Nothing stored for a task outlives it: a DELETE that lands while a step stores files, the files a
killed step left for a deleted task, the inputs of failed and cancelled tasks (retention), uploads of
idempotent replays and refused creates, and the scratch directories of claims that are over."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image

from tests.helpers import query
from vidgate.api.actions import cancel_task
from vidgate.clock import ManualClock
from vidgate.domain.tasks import Step
from vidgate.store.blobs import BlobInfo, BlobStore, media_key
from vidgate.worker.runner import Worker
from vidgate.worker.scratch import scratch_dir, sweep_scratch
from vidgate.worker.service import build_worker, delete_expired_media, delete_files_of_deleted_tasks

pytestmark = pytest.mark.anyio


def png(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, "PNG")
    return buf.getvalue()


def stored_dirs(gw: Any, ulid: str) -> list[str]:
    """Which of the task's storage folders exist."""
    root = gw.settings.media_dir
    return [prefix for prefix in ("videos", "inputs", "uploads") if (root / prefix / ulid).exists()]


class StoreThenHook:
    """The worker's BlobStore, running `before` once: just before the first file under `prefix` is
    stored. Everything else goes straight through."""

    def __init__(self, inner: BlobStore, prefix: str, before: Callable[[], Awaitable[None]]) -> None:
        self.inner = inner
        self.prefix = prefix
        self.before: Callable[[], Awaitable[None]] | None = before

    async def _hook(self, key: str) -> None:
        if self.before is not None and key.startswith(self.prefix):
            before, self.before = self.before, None
            await before()

    async def put_file(self, src: Path, key: str, *, move: bool = False) -> BlobInfo:
        await self._hook(key)
        return await self.inner.put_file(src, key, move=move)

    async def put_bytes(self, data: bytes, key: str) -> BlobInfo:
        await self._hook(key)
        return await self.inner.put_bytes(data, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def tick_until_step(gw: Any, worker: Worker, clock: ManualClock, ulid: str, step: Step) -> None:
    for _ in range(50):
        if (await gw.runtime.tasks.get(ulid)).step is step:
            return
        clock.advance(1)
        await worker.tick()
    raise AssertionError(f"the task never reached step {step}")


@pytest.mark.parametrize(
    ("images", "step", "prefix"),
    [
        ([], Step.FETCH, "videos/"),
        ([f"data:image/png;base64,{base64.b64encode(png()).decode()}"], Step.INGEST, "inputs/"),
    ],
    ids=["result", "inputs"],
)
async def test_a_delete_while_a_step_stores_files_leaves_none_behind(
    start_gateway, images: list[str], step: Step, prefix: str
) -> None:
    """The DELETE lands after the step began and before its files land: the API finds nothing to remove,
    the step stores its files, and its commit is refused. The step must remove what it stored."""
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw:
        async with gw.client(await gw.new_key()) as client:
            body = {"model": "sora-2", "prompt": "x", "images": images}
            task_id = (await client.post("/v1/video/create", json=body)).json()["id"]
            ulid = task_id.split("_")[-1]
            await tick_until_step(gw, build_worker(gw.runtime), clock, ulid, step)
            deleted: list[int] = []

            async def delete_now() -> None:
                deleted.append((await client.delete(f"/v1/videos/video_{ulid}")).status_code)

            plain = build_worker(gw.runtime)
            hooked = StoreThenHook(gw.runtime.blobs, f"{prefix}{ulid}/", delete_now)
            worker = Worker(dataclasses.replace(plain.deps, blobs=hooked), scratch_root=plain.scratch_root)
            assert await worker.tick() == 1
            assert deleted == [200]
            task = await gw.runtime.tasks.get(ulid, include_deleted=True)
            assert task.deleted_at is not None and task.video_key is None  # the step's commit lost
            assert stored_dirs(gw, ulid) == []


async def test_files_a_killed_step_left_for_a_deleted_task_are_swept(start_gateway) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw:
        store, blobs = gw.runtime.tasks, gw.runtime.blobs
        async with gw.client(await gw.new_key()) as client:
            task_id = (await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "x"})).json()[
                "id"
            ]
            ulid = task_id.split("_")[-1]
            # A step claims the task; the client deletes it; the step stores its result and is killed.
            await store.claim_due(worker="killed", limit=1, lease_ms=5000)
            assert (await client.delete(f"/v1/videos/video_{ulid}")).status_code == 200
            await blobs.put_bytes(b"not referenced by anything", media_key(ulid, "video"))

            assert await delete_files_of_deleted_tasks(gw.runtime) == 0  # its lease may still be writing
            assert stored_dirs(gw, ulid) == ["videos"]
            clock.advance(6)
            assert await delete_files_of_deleted_tasks(gw.runtime) == 1
            assert stored_dirs(gw, ulid) == []
            assert await delete_files_of_deleted_tasks(gw.runtime) == 0  # each deleted task is swept once


def openai_form(prompt: str) -> dict[str, str]:
    return {"prompt": prompt, "model": "sora-2", "seconds": "4", "size": "720x1280"}


async def test_retention_removes_the_inputs_of_failed_and_cancelled_tasks(start_gateway) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock, media_retention_days=2) as gw:
        async with gw.client(await gw.new_key()) as client:
            not_an_image = png()[:64] + b"\0" * 4096  # a PNG signature, then garbage: refused at ingest
            bad = await client.post(
                "/v1/videos", data=openai_form("bad"), files={"input_reference": ("a.png", not_an_image)}
            )
            cancelled = await client.post(
                "/v1/videos", data=openai_form("cancelled"), files={"input_reference": ("b.png", png())}
            )
            bad_ulid, cancelled_ulid = (r.json()["id"].split("_")[-1] for r in (bad, cancelled))
            owner = (await gw.runtime.tasks.get(cancelled_ulid)).owner
            await cancel_task(gw.runtime, cancelled_ulid, owner=owner)
            worker = build_worker(gw.runtime)
            for _ in range(5):
                clock.advance(1)
                await worker.tick()
            failed = await client.get(f"/v1/videos/video_{bad_ulid}")
            assert failed.json()["status"] == "failed", failed.json()
            assert stored_dirs(gw, bad_ulid) == ["uploads"] and stored_dirs(gw, cancelled_ulid) == ["uploads"]

            clock.advance(86400)
            assert await delete_expired_media(gw.runtime) == 0  # not old enough yet
            clock.advance(86400 + 1)
            assert await delete_expired_media(gw.runtime) == 2
            assert stored_dirs(gw, bad_ulid) == [] and stored_dirs(gw, cancelled_ulid) == []
            assert await delete_expired_media(gw.runtime) == 0
            assert (await query(client, f"sora-2:task_{bad_ulid}"))["status"] == "failed"  # the task stays


async def test_concurrent_idempotent_multipart_replays_leave_one_upload(client, gateway) -> None:
    headers = {"Idempotency-Key": "one-upload"}

    async def create() -> httpx.Response:
        return await client.post(
            "/v1/videos", data=openai_form("x"), files={"input_reference": ("a.png", png())}, headers=headers
        )

    responses: list[httpx.Response] = []
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(lambda: _append(responses, create()))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    uploads = gateway.settings.media_dir / "uploads"
    assert [p.name for p in uploads.iterdir()] == [responses[0].json()["id"].removeprefix("video_")]


async def _append(into: list[httpx.Response], response: Awaitable[httpx.Response]) -> None:
    into.append(await response)


async def test_a_create_refused_for_a_reused_idempotency_key_leaves_no_upload(client, gateway) -> None:
    headers = {"Idempotency-Key": "reused"}
    first = await client.post(
        "/v1/videos", data=openai_form("x"), files={"input_reference": ("a.png", png("red"))}, headers=headers
    )
    other = await client.post(
        "/v1/videos",
        data=openai_form("x"),
        files={"input_reference": ("a.png", png("blue"))},
        headers=headers,
    )
    assert first.status_code == 200 and other.status_code == 409
    uploads = gateway.settings.media_dir / "uploads"
    assert [p.name for p in uploads.iterdir()] == [first.json()["id"].removeprefix("video_")]


async def test_scratch_of_claims_that_are_over_is_swept_at_start_and_live_claims_keep_theirs(
    start_gateway,
) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw:
        store = gw.runtime.tasks
        async with gw.client(await gw.new_key()) as client:
            for prompt in ("live", "stale"):
                await client.post("/v1/video/create", json={"model": "sora-2", "prompt": prompt})
        worker = build_worker(gw.runtime)
        root = worker.scratch_root
        [live] = await store.claim_due(worker="other-process", limit=1, lease_ms=60_000)
        [stale] = await store.claim_due(worker="killed", limit=1, lease_ms=1000)
        clock.advance(2)  # the killed worker's lease runs out
        for path in (
            scratch_dir(root, stale),
            scratch_dir(root, live),
            root / "junk",
            root / f"{live.task.id}-3",
        ):
            (path / "out").mkdir(parents=True)
            (path / "out" / "video.mp4").write_bytes(b"partial")

        stop = anyio.Event()
        stop.set()
        await worker.run(stop)  # starts (sweeping) and stops at once
        assert sorted(p.name for p in root.iterdir()) == [scratch_dir(root, live).name]

        await store.release(live)  # that claim is over too
        assert await sweep_scratch(root, store) == 1
        assert list(root.iterdir()) == []
