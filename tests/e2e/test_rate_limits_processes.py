"""Rate limits hold across two real `vidgate serve --no-worker` processes sharing one redis-server: a key
made with `vidgate keys create --requests-per-minute 5` gets 5 requests in all, whichever process
answers them; another key keeps its own count."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import Deployment, wait_until, write_config
from tests.redis_server import running_redis
from vidgate.testing.server import bind_loopback

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_two_api_processes_share_one_limit(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "vidgate.toml",
        worker={"idle_poll_seconds": 0.2},
        channel={"name": "relay", "kind": "scripted", "models": ["sora-2"]},
        options={"state_dir": str(tmp_path / "upstream"), "polls": 1, "poll_after": 0.01},
    )
    dep = Deployment(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}", config)
    with running_redis(tmp_path / "redis") as redis, contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        dep.env["VIDGATE_REDIS_URL"] = redis.url
        limited = dep.cli("keys", "create", "--name", "limited", "--requests-per-minute", "5")
        key = limited.stdout.strip().splitlines()[-1]
        other = dep.new_key()
        dep.serve("--no-worker")
        sock = bind_loopback()
        second_port = sock.getsockname()[1]
        sock.close()
        dep.start("serve", "--no-worker", "--port", str(second_port), log_name="serve2")
        second_url = f"http://127.0.0.1:{second_port}"
        wait_until(lambda: _answers(second_url), timeout=60, what="the second API process")

        left = 60 - time.time() % 60
        if left < 5:  # a burst that straddles a minute's start may get one extra request through
            time.sleep(left + 0.05)
        headers = {"authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=dep.base_url, headers=headers, timeout=10) as a,
            httpx.Client(base_url=second_url, headers=headers, timeout=10) as b,
        ):
            answers = [c.get("/v1/videos") for c in (a, b, a, b, a, b, a, b)]
            assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
            refused = answers[-1].json()["error"]
            assert refused["code"] == "rate_limit_exceeded"
            assert int(answers[-1].headers["retry-after"]) >= 1
        with dep.client(other) as c:
            assert c.get("/v1/videos").status_code == 200
