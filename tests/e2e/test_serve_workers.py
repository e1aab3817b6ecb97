"""`vidgate serve --workers 2`: two API processes on one port under a supervising parent. Each answers
(shown by killing the other), one killed with SIGKILL is replaced while requests keep succeeding, the
embedded worker runs in one of them, a stop ends with exit 0 and no process left, a second signal stops
at once, and a failed start exits non-zero without leaving any process behind. On SQLite: it must work
there too, if slower."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from tests.e2e.proc_tree import is_running, spawned_children, with_environment
from tests.e2e.processes import Deployment, wait_for_task_end, wait_until, write_config
from vidgate.store.db import sync_url
from vidgate.store.tables import tasks

pytestmark = pytest.mark.slow


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


def scripted_config(tmp_path: Path, **worker: object) -> Path:
    return write_config(
        tmp_path / "vidgate.toml",
        worker={"lease_seconds": 2, "idle_poll_seconds": 0.1, **worker},
        channel={"name": "relay", "kind": "scripted", "models": ["sora-2"]},
        options={"state_dir": str(tmp_path / "upstream"), "polls": 1, "poll_after": 0.01, "clip_scale": 40},
    )


def http_processes(dep: Deployment, proc: subprocess.Popen[bytes], n: int = 2) -> list[int]:
    """The supervisor's `n` children, once all of them have told it they serve."""

    def ready() -> list[int] | None:
        pids = spawned_children(proc.pid)
        return pids if len(pids) == n and all(is_running(p) for p in pids) else None

    pids: list[int] = wait_until(ready, timeout=90, what=f"{n} http processes")
    wait_until(lambda: '"serving"' in dep.log("serve"), timeout=90, what="the supervisor's serving line")
    return pids


def answered(dep: Deployment, key: str, task_id: str, n: int = 20) -> None:
    """`n` requests, each on a fresh connection (so each is accepted anew by whichever process is
    listening), all answered 200 from the database."""
    for _ in range(n):
        with dep.client(key) as api:  # a new client: a new connection
            response = api.get("/v1/video/query", params={"id": task_id})
            assert response.status_code == 200, response.text


def none_left(tmp_path: Path) -> None:
    """No process of the test's deployment is left. multiprocessing's resource tracker (a helper of
    spawn) sees its parent's exit a moment later than the parent's own waiter does: a bounded wait."""
    wait_until(lambda: not with_environment(str(tmp_path)), timeout=10, what="every process to end")


def queries_counted(dep: Deployment) -> float:
    """`vidgate_http_requests_total` of the query route, as /metrics (of whichever process answers) says."""
    text = httpx.get(f"{dep.base_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vidgate_http_requests_total{") and 'route="/v1/video/query"' in line
    )


def multiproc_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    value = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    return Path(value.split(b"=", 1)[1].decode())


def kill9_child(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not is_running(pid), timeout=30, what=f"process {pid} to die")


def test_both_processes_serve_and_a_killed_one_is_replaced(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, sqlite_url(tmp_path), scripted_config(tmp_path))
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        key = dep.new_key()
        proc = dep.serve("--workers", "2")
        first, second = http_processes(dep, proc)
        with dep.client(key) as api:
            ids = [
                api.post("/v1/video/create", json={"model": "sora-2", "prompt": f"t{i}"}).json()["id"]
                for i in range(3)
            ]
            for task_id in ids:
                assert wait_for_task_end(api, task_id, timeout=90, what="a task")["status"] == "completed"
        assert dep.log("serve").count('"worker started"') == 1, "the embedded worker runs in one process"
        # One metrics directory for both, made by the parent: either process's /metrics counts every
        # request, whichever process answered it.
        metrics_dir = multiproc_dir(first)
        assert metrics_dir == multiproc_dir(second) and metrics_dir.is_dir()
        before = queries_counted(dep)
        answered(dep, key, ids[0])
        assert queries_counted(dep) - before == 20

        kill9_child(first)
        answered(dep, key, ids[0])  # the second alone answers, while the first is replaced
        replacement = wait_until(
            lambda: next((p for p in http_processes(dep, proc) if p not in (first, second)), None),
            timeout=90,
            what="a replacement process",
        )
        wait_until(lambda: '"http process replaced"' in dep.log("serve"), timeout=90, what="it to serve")
        kill9_child(second)
        answered(dep, key, ids[0])  # now the replacement alone answers
        third = wait_until(
            lambda: next(
                (p for p in http_processes(dep, proc) if p not in (first, second, replacement)), None
            ),
            timeout=90,
            what="a second replacement",
        )
        # The embedded worker was in one of the killed processes: its replacement runs it again.
        with dep.client(key) as api:
            late = api.post("/v1/video/create", json={"model": "sora-2", "prompt": "late"}).json()["id"]
            assert (
                wait_for_task_end(api, late, timeout=90, what="a task after the kills")["status"]
                == "completed"
            )

        os.killpg(proc.pid, signal.SIGTERM)  # the group, as a service manager does: reaches the parent only
        assert proc.wait(timeout=60) == 0
        assert not any(is_running(p) for p in (replacement, third))
        assert not metrics_dir.exists(), "the parent removes the metrics directory it made"
        none_left(tmp_path)
    log = dep.log("serve")
    assert "Traceback" not in log, log[-3000:]
    assert '"http process died; replacing it"' in log


def test_a_second_signal_stops_the_embedded_worker_at_once(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "vidgate.toml",
        worker={"lease_seconds": 60, "idle_poll_seconds": 0.1, "shutdown_grace_seconds": 30},
        channel={"name": "relay", "kind": "scripted", "models": ["sora-2"]},
        options={"state_dir": str(tmp_path / "upstream"), "submit_seconds": 120},
    )
    dep = Deployment(tmp_path, sqlite_url(tmp_path), config)
    dep.env["VIDGATE_HTTP_WORKERS"] = "2"  # the setting, as --workers 2
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        key = dep.new_key()
        proc = dep.serve()
        http_processes(dep, proc)
        with dep.client(key) as api:
            assert api.post("/v1/video/create", json={"model": "sora-2", "prompt": "x"}).status_code == 200
        wait_until(lambda: (tmp_path / "upstream" / "journal.jsonl").exists(), timeout=60, what="the submit")
        os.kill(proc.pid, signal.SIGINT)
        wait_until(lambda: "waiting for running steps" in dep.log("serve"), timeout=30, what="the grace")
        assert proc.poll() is None  # the 30 s grace for the 120 s submit
        again = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - again < 15, "the second signal waited for the grace period"
        none_left(tmp_path)
        engine = create_engine(sync_url(sqlite_url(tmp_path)))
        with engine.connect() as conn:
            row = conn.execute(select(tasks.c.status, tasks.c.lease_owner)).one()
        engine.dispose()
        assert tuple(row) == ("pending", None), "the stopped step was not handed back"


def run_serve(dep: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidgate", "serve", *args],
        env=dep.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_child_that_dies_while_starting_stops_everything(tmp_path: Path) -> None:
    """As when a child cannot start (its app's startup fails, the OOM killer takes it): the other is
    stopped too, and the parent exits 3 with nothing left behind."""
    dep = Deployment(tmp_path, sqlite_url(tmp_path), scripted_config(tmp_path))
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        proc = dep.start("serve", "--workers", "2", log_name="serve")
        # Caught within 50 ms of its spawn, seconds before it can have imported the app and served.
        victim = wait_until(lambda: spawned_children(proc.pid)[:1], timeout=60, what="a child")[0]
        os.kill(victim, signal.SIGSTOP)
        if '"serving"' in dep.log("serve"):
            pytest.fail("the child was ready before it could be stopped: the test proves nothing")
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=120) == 3
        assert '"http process failed to start; stopping"' in dep.log("serve")
        assert '"serving"' not in dep.log("serve")
        none_left(tmp_path)


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, sqlite_url(tmp_path), scripted_config(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", dep.port))
        taken.listen()
        result = run_serve(dep, "--workers", "2")
    assert result.returncode == 3, result.stderr[-3000:]
    assert f"cannot listen on 127.0.0.1:{dep.port}" in result.stderr
    none_left(tmp_path)
