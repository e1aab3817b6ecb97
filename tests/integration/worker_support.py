"""Helpers for integration tests that run a gateway's worker by hand against the scripted channel:
quick worker settings, the scripted upstream's journal, and running a task to rest."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from vidgate.config import WorkerSettings
from vidgate.domain.tasks import Step
from vidgate.worker.runner import Worker
from vidgate.worker.service import build_worker

QUICK = WorkerSettings(
    lease_seconds=5, idle_poll_seconds=0.05, retry_base_seconds=0.01, retry_max_seconds=0.05
)


def journal(state_dir: Path, task_id: str) -> list[dict[str, Any]]:
    """The scripted upstream's journal lines about `task_id` (every submit, poll, find, cancel...)."""
    path = state_dir / "journal.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for line in lines if (e := json.loads(line))["task"] == task_id]


def ops(state_dir: Path, task_id: str) -> list[str]:
    return [e["op"] for e in journal(state_dir, task_id)]


def accepted_upstream(state_dir: Path, task_id: str) -> Callable[[], Awaitable[bool]]:
    """A check for `until`: the scripted upstream has made the task's job."""

    async def check() -> bool:
        return "accepted" in ops(state_dir, task_id)

    return check


async def done(gw: Any, task_id: str) -> Any:
    """The task, once the worker has nothing left to do for it; else None."""
    task = await gw.runtime.tasks.get(task_id)
    return task if task.step is Step.DONE else None


async def run_to_rest(gw: Any, task_id: str, worker: Worker | None = None, timeout: float = 30) -> Any:
    """Run a worker until the task has ended and nothing is left to do for it."""
    worker = worker or build_worker(gw.runtime)
    stop = anyio.Event()
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run, stop)
            while not ((t := await gw.runtime.tasks.get(task_id)).status.is_terminal and t.step is Step.DONE):
                await anyio.sleep(0.02)
            stop.set()
    return await gw.runtime.tasks.get(task_id)
