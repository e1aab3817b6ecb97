"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import anyio
import httpx

from vidgate.config import ChannelSettings
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import Step, Task, TaskStatus, WatermarkMode
from vidgate.store.attempts import Attempt, insert_attempt
from vidgate.store.db import write_transaction

TERMINAL = ("completed", "failed", "cancelled")
SPEC = VideoSpec("sora-2", "p", (), 720, 1280, 10, WatermarkMode.PREFER_CLEAN)


async def new_task(gw: Any, spec: VideoSpec = SPEC, deadline_s: float = 3600) -> Any:
    """A task saved straight into a gateway's store (its owner a fresh key), as the API would."""
    runtime = gw.runtime
    key = (await runtime.keys.create(name="w", is_admin=False, now=runtime.clock.now_ms()))[0]
    return await runtime.tasks.create(
        spec,
        owner=key.id,
        dialect="unified",
        now=runtime.clock.now_ms(),
        deadline_ms=round(deadline_s * 1000),
    )


def scripted_channel(state_dir: Path, name: str = "scripted", **options: Any) -> ChannelSettings:
    """A scripted channel serving sora-2 and sora-2-pro, quick and tiny unless told otherwise."""
    return ChannelSettings(
        name=name,
        kind="scripted",
        models=["sora-2", "sora-2-pro"],
        options={"state_dir": str(state_dir), "poll_after": 0.01, "clip_scale": 20, **options},
    )


async def query(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    r = await client.get("/v1/video/query", params={"id": task_id})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def wait_for_status(
    client: httpx.AsyncClient, task_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 60
) -> dict[str, Any]:
    """Poll the query route until the task reaches one of `statuses` (bounded by `timeout`)."""
    with anyio.fail_after(timeout):
        while True:
            state = await query(client, task_id)
            if state["status"] in statuses:
                return state
            await anyio.sleep(0.05)


@asynccontextmanager
async def worker_running(gw: Any, worker: Any = None, timeout: float = 30) -> AsyncIterator[Any]:
    """A worker of `gw` running for the block, which is bounded by `timeout`; stopped when it ends."""
    from vidgate.worker.service import build_worker

    worker = worker or build_worker(gw.runtime)
    stop = anyio.Event()
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run, stop)
            try:
                yield worker
            finally:
                stop.set()


async def until(check: Callable[[], Awaitable[Any]], interval: float = 0.02) -> Any:
    """Poll `check` until it answers something true, and return that (bound it with the caller's timeout)."""
    while not (found := await check()):
        await anyio.sleep(interval)
    return found


def task_row(**changes: Any) -> Task:
    """A task as the store would read it (processing, polling), with `changes`; for pure rules."""
    defaults: dict[str, Any] = {f.name: None for f in fields(Task)}
    defaults.update(
        id="01m8rfx0000000000000000000", owner="k", dialect="unified", model="sora-2", prompt="p",
        status=TaskStatus.PROCESSING, step=Step.POLL, progress=0, width=720, height=1280, seconds=10,
        orientation="portrait", size_label="small", watermark_mode=WatermarkMode.REQUIRE_CLEAN, private=False,
        input={}, images=(), created_at=0, status_update_time=0, deadline_at=10, next_run_at=0, attempts=0,
        version=1, submissions=0, callback_attempts=0,
    )  # fmt: skip
    return replace(Task(**defaults), **changes)


async def record_attempt(runtime: Any, task_id: str, channel: str, idempotency_key: str) -> Attempt:
    """An upstream attempt recorded as a submit records it (`insert_attempt`, in a write transaction),
    for tests that set up what earlier submits left."""
    async with write_transaction(runtime.engine) as conn:
        return await insert_attempt(conn, runtime.attempts.queue_clock, task_id, channel, idempotency_key)


def modules_after(code: str) -> set[str]:
    """sys.modules once `code` has run in a fresh interpreter (printed as the last line of stdout)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def among(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))
