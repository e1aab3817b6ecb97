"""kill -9 of the serving process in the middle of a task: after a restart the task still finishes,
exactly once (one upstream submit, one fetch, one completed event), on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import av
import httpx
import pytest

from tests.e2e.processes import Deployment, wait_for_task_end, wait_until, write_config

pytestmark = pytest.mark.slow


def journal(state_dir: Path) -> list[dict]:
    path = state_dir / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_task_survives_kill_9_mid_task_and_finishes_exactly_once(tmp_path: Path, db_url: str) -> None:
    state_dir = tmp_path / "upstream"
    config = write_config(
        tmp_path / "vidgate.toml",
        worker={"lease_seconds": 2, "idle_poll_seconds": 0.1},
        channel={"name": "relay", "kind": "scripted", "models": ["sora-2"]},
        options={"state_dir": str(state_dir), "polls": 25, "poll_after": 0.1, "clip_scale": 20},
    )
    dep = Deployment(tmp_path, db_url, config)
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        key = dep.new_key()
        api = dep.client(key)
        stack.callback(api.close)
        first = dep.serve()
        task_id = api.post("/v1/video/create", json={"model": "sora-2", "prompt": "crash me"}).json()["id"]
        ulid = task_id.split("_")[-1]

        # Wait until the upstream has the job and we are polling it: the middle of the task.
        wait_until(
            lambda: sum(e["op"] == "poll" and e["task"] == ulid for e in journal(state_dir)) >= 3,
            timeout=60,
            what="the task to be polled upstream",
        )
        assert api.get("/v1/video/query", params={"id": task_id}).json()["status"] == "processing"
        Deployment.kill9(first)

        dep.serve()
        final = wait_for_task_end(api, task_id, timeout=90, what="the task to finish after the restart")
        assert final["status"] == "completed", final
        ops = [e["op"] for e in journal(state_dir) if e["task"] == ulid]
        assert ops.count("submit") == 1, ops
        assert ops.count("duplicate_submit") == 0, ops
        assert ops.count("fetch") == 1, ops
        assert "overlap" not in ops

        events = api.get("/v1/video/query", params={"id": task_id}).json()
        assert events["progress"] == 100
        video = httpx.get(final["video_url"], timeout=10)
        assert video.status_code == 200
        path = tmp_path / "out.mp4"
        path.write_bytes(video.content)
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
    log = dep.log("serve")
    assert "Traceback" not in log, log[-3000:]
