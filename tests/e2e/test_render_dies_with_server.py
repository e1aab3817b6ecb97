"""kill -9 of `vidgate serve` while the built-in engine renders: the render process (and
multiprocessing's resource tracker) die with it, not half a minute later, and once the restarted server
has rendered the task again the dead attempt's scratch directory is gone."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.proc_tree import children, is_running, render_children
from tests.e2e.processes import Deployment, wait_for_task_end, wait_until, write_config

pytestmark = pytest.mark.slow
ANIMATE = {"name": "animate", "kind": "animate", "models": ["sora-2"]}


def test_kill_9_of_serve_takes_its_render_along_and_the_retry_sweeps_its_scratch(
    tmp_path: Path, db_url: str
) -> None:
    config = write_config(
        tmp_path / "vidgate.toml",
        worker={"lease_seconds": 2, "idle_poll_seconds": 0.1},
        channels=[ANIMATE],
    )
    dep = Deployment(tmp_path, db_url, config)
    scratch_root = tmp_path / "data" / "work"
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        key = dep.new_key()
        api = dep.client(key)
        stack.callback(api.close)
        first = dep.serve()
        body = {"model": "sora-2", "prompt": "orphan", "size": "large", "duration": 15}
        task_id = api.post("/v1/video/create", json=body).json()["id"]

        wait_until(lambda: render_children(first.pid), timeout=60, what="the render process to start")
        helpers = children(first.pid)  # the render, and multiprocessing's resource tracker
        [dead_attempt] = list(scratch_root.iterdir())
        os.kill(first.pid, signal.SIGKILL)  # the server only, as the OOM killer would: not its group
        first.wait(timeout=30)
        wait_until(
            lambda: not any(is_running(pid) for pid in helpers),
            timeout=5,
            what=f"the processes of the killed server to end ({[p for p in helpers if is_running(p)]})",
        )

        dep.serve()
        final = wait_for_task_end(api, task_id, timeout=240, what="the task to finish after the restart")
        assert final["status"] == "completed", final
        wait_until(lambda: not dead_attempt.exists(), timeout=30, what="the dead attempt's scratch to go")
        assert list(scratch_root.iterdir()) == []
    assert "Traceback" not in dep.log("serve"), dep.log("serve")[-3000:]
