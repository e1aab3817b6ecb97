"""kill -9 of the gateway while an upstream holds its job: after a restart no second upstream job is made.

Two tasks on the shipped fake upstream (a separate `vidgate dev fake-upstream` process):
- "unknown": the fake made the job and holds its answer; the gateway is killed before the job's id
  came back. After the restart the task must find out (the openai adapter looks the job up, the
  unified one replays the same idempotency key to a channel that dedupes), never create a second one;
- "polling": the job's id was saved and the task is being polled; after the restart polling resumes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.e2e.processes import Deployment, FakeUpstreamProcess, wait_for_task_end, wait_until, write_config

pytestmark = pytest.mark.slow
FAKE_KEY = "sk-e2e-fake"


@pytest.mark.parametrize("kind", ["openai", "unified"])
def test_kill_9_between_submit_and_poll_never_makes_a_second_upstream_job(
    tmp_path: Path, db_url: str, kind: str
) -> None:
    dep_config = tmp_path / "vidgate.toml"
    dep = Deployment(tmp_path, db_url, dep_config)
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        upstream = FakeUpstreamProcess(dep, api_key=FAKE_KEY, ready=4, hang=8, poll_after_ms=200)
        fake = upstream.url
        write_config(
            dep_config,
            worker={"lease_seconds": 2, "idle_poll_seconds": 0.1, "retry_base_seconds": 0.2},
            channel={
                "name": "up",
                "kind": kind,
                "models": ["sora-2"],
                "base_url": f"{fake}/v1",
                "api_key": FAKE_KEY,
                # Longer than the fake holds the answer (hang=8): the kill, not a timeout, ends the create.
                # Not much longer: a lookup starts only a request timeout after the create was sent.
                "request_timeout_seconds": 10,
                "honours_idempotency_key": kind == "unified",
            },
            options={},
        )
        key = dep.new_key()
        api = dep.client(key)
        stack.callback(api.close)
        first = dep.serve()
        prompts = {"unknown": "a kite #accept_then_hang=1", "polling": "a kite #ready=6"}
        ids = {
            name: api.post("/v1/video/create", json={"model": "sora-2", "prompt": text}).json()["id"]
            for name, text in prompts.items()
        }
        wait_until(
            lambda: (
                any(e["op"] == "create" for e in upstream.journal(prompts["unknown"]))
                and sum(e["op"] == "poll" for e in upstream.journal(prompts["polling"])) >= 2
            ),
            timeout=60,
            what="one job made upstream with its answer held, and one being polled",
        )
        Deployment.kill9(first)

        dep.serve()
        finals = {
            name: wait_for_task_end(
                api, task_id, timeout=90, what=f"the {name} task to finish after the restart"
            )
            for name, task_id in ids.items()
        }
        for name, final in finals.items():
            assert final["status"] == "completed", (name, final)
            creates = [e for e in upstream.journal(prompts[name]) if e["op"] == "create"]
            assert len(creates) == 1, (name, upstream.journal(prompts[name]))
    assert "Traceback" not in dep.log("serve"), dep.log("serve")[-3000:]
