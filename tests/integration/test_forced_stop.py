"""A forced stop (a second signal) does not wait out the shutdown grace: the running step is stopped and
its task released at once, whether it comes during the graceful stop or before it began."""

from __future__ import annotations

import functools

import anyio
import pytest

from tests.helpers import new_task, scripted_channel
from vidgate.config import WorkerSettings
from vidgate.worker.service import build_worker

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("graceful_first", [True, False], ids=["during-the-graceful-stop", "alone"])
async def test_a_forced_stop_releases_the_running_step_at_once(
    start_gateway, tmp_path, graceful_first: bool
) -> None:
    channel = scripted_channel(tmp_path / "up", submit_seconds=600)
    worker_settings = WorkerSettings(lease_seconds=60, idle_poll_seconds=0.02, shutdown_grace_seconds=600)
    async with start_gateway(run_worker=False, channels=[channel], worker=worker_settings) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        stop, force = anyio.Event(), anyio.Event()
        with anyio.fail_after(30):  # far less than the grace: the stop did not wait for it
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(worker.run, stop, force=force))
                while not (tmp_path / "up" / "journal.jsonl").exists():  # the submit has begun
                    await anyio.sleep(0.02)
                if graceful_first:
                    stop.set()  # (tests/e2e/test_second_signal.py forces once the grace wait has begun)
                force.set()
        released = await gw.runtime.tasks.get(task.id)
        assert released.lease_owner is None and released.lease_expires_at is None
        assert released.status.value == "pending"
