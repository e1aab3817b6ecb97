"""Several `vidgate worker` processes on one PostgreSQL database over hundreds of tasks (260 by default,
520 in `make chaos`): every task completes, and no step of any task runs twice or overlaps another step
of the same task."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.e2e.processes import Deployment, write_config
from vidgate.clock import SystemClock
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import WatermarkMode
from vidgate.store import db
from vidgate.store.keys import KeyStore
from vidgate.store.tables import task_events, tasks
from vidgate.store.tasks import TaskStore
from vidgate.testing.databases import create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
# The default run (CI) is the short form; `make chaos` runs the full one (520 tasks).
TASKS = int(os.environ.get("VIDGATE_MULTIWORKER_TASKS", "260"))
WORKERS = 3


async def create_tasks(url: str, n: int) -> list[str]:
    await db.upgrade(url)
    engine = db.create_engine(url)
    try:
        now = SystemClock().now_ms()
        owner = (await KeyStore(engine).create(name="load", is_admin=False, now=now))[0].id
        store = TaskStore(engine)
        spec = VideoSpec("sora-2", "load", (), 720, 1280, 10, WatermarkMode.PREFER_CLEAN)
        return [
            (await store.create(spec, owner=owner, dialect="unified", now=now, deadline_ms=3_600_000)).id
            for _ in range(n)
        ]
    finally:
        await engine.dispose()


async def status_counts(url: str) -> dict[str, int]:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status))).all()
        return {status: n for status, n in rows}
    finally:
        await engine.dispose()


async def transitions(url: str) -> list[tuple[str, str]]:
    engine = db.create_engine(url)
    try:
        query = select(task_events.c.task_id, task_events.c.to_status).where(task_events.c.kind == "status")
        async with engine.connect() as conn:
            return [(r[0], r[1]) for r in (await conn.execute(query)).all()]
    finally:
        await engine.dispose()


def test_workers_on_postgres_never_run_a_step_twice(tmp_path: Path, pg_admin_url: str) -> None:
    url = create_pg_database(pg_admin_url)
    state_dir = tmp_path / "upstream"
    config = write_config(
        tmp_path / "vidgate.toml",
        worker={"concurrency": 8, "lease_seconds": 30, "idle_poll_seconds": 0.2},
        channel={"name": "relay", "kind": "scripted", "models": ["sora-2"]},
        options={"state_dir": str(state_dir), "polls": 1, "poll_after": 0.01, "clip_scale": 40},
    )
    dep = Deployment(tmp_path, url, config)
    with contextlib.ExitStack() as stack:
        stack.callback(drop_pg_database, pg_admin_url, url)
        stack.callback(dep.stop_all)
        ids = asyncio.run(create_tasks(url, TASKS))
        started = time.monotonic()
        for i in range(WORKERS):
            dep.start("worker", log_name=f"worker{i}")
        deadline = started + 600
        while True:
            counts = asyncio.run(status_counts(url))
            if counts.get("pending", 0) + counts.get("processing", 0) == 0:
                break
            assert time.monotonic() < deadline, f"not done in time: {counts}"
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        assert counts == {"completed": TASKS}, counts
        to_status = collections.Counter(asyncio.run(transitions(url)))

    journal = [json.loads(line) for line in (state_dir / "journal.jsonl").read_text().splitlines()]
    per_task = collections.defaultdict(collections.Counter)
    for entry in journal:
        per_task[entry["task"]][entry["op"]] += 1
    assert set(per_task) == set(ids)
    for task_id, ops in per_task.items():
        # One submit (one job), two polls (running, then done), one fetch; nothing repeated or overlapping.
        assert ops == collections.Counter({"submit": 1, "accepted": 1, "poll": 2, "fetch": 1}), (task_id, ops)

    for task_id in ids:
        assert to_status[(task_id, "processing")] == 1 and to_status[(task_id, "completed")] == 1

    pids = collections.Counter(e["pid"] for e in journal)
    assert len(pids) == WORKERS, f"every worker should take part: {pids}"
    print(
        f"\n{TASKS} tasks, {WORKERS} workers: {elapsed:.1f} s, {len(journal)} upstream calls, "
        f"split {sorted(pids.values())}"
    )
    for i in range(WORKERS):
        assert "Traceback" not in dep.log(f"worker{i}"), dep.log(f"worker{i}")[-3000:]
