"""Deadlines are on the database's clock, the one every host shares: a task's deadline is
written from it, and a worker whose own clock is off compares with it, not with its own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import new_task, scripted_channel
from tests.integration.worker_support import QUICK, run_to_rest
from vidgate.clock import DatabaseAlignedClock, SystemClock
from vidgate.domain.tasks import TaskStatus
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio
AN_HOUR_MS = 3_600_000


class SkewedClock(SystemClock):
    """A host whose clock runs an hour ahead."""

    def now_ms(self) -> int:
        return super().now_ms() + AN_HOUR_MS


async def test_a_worker_whose_clock_runs_ahead_does_not_end_tasks_early(
    start_gateway: Any, tmp_path: Any
) -> None:
    async with start_gateway(
        run_worker=False, channels=[scripted_channel(tmp_path / "up")], worker=QUICK
    ) as gw:
        task = await new_task(gw, deadline_s=600)
        worker = build_worker(gw.runtime)
        worker.deps.clock = DatabaseAlignedClock(SkewedClock())
        final = await run_to_rest(gw, task.id, worker)
    assert final.status is TaskStatus.COMPLETED, final.error


async def test_a_deadline_is_written_on_the_databases_clock_whatever_the_api_hosts_says(
    start_gateway: Any,
) -> None:
    async with start_gateway(run_worker=False) as gw:
        gw.runtime.clock = SkewedClock()  # the API process's clock: created_at comes from it
        async with gw.client(await gw.new_key()) as client:
            made = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "p"})
            assert made.status_code == 200, made.text
        task_id = made.json()["id"].rsplit("_", 1)[-1]
        task = await gw.runtime.tasks.get(task_id)
        database_now = await gw.runtime.tasks.now_ms()
    deadline_ms = round(gw.settings.worker.task_deadline_seconds * 1000)
    assert abs(task.deadline_at - (database_now + deadline_ms)) < 30_000, task.deadline_at - database_now
