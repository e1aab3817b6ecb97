"""A second Ctrl-C stops `vidgate serve` and `vidgate worker` at once, as uvicorn and most servers do:
the running render is killed and its task released (not left for its lease to expire), well within the
30 s grace the first one gives. The render itself ignores the Ctrl-C that reaches its process group. The
first one says on stderr what it waits for (which task's render) and that a second Ctrl-C stops at once.

`serve` is stopped twice: once while its worker waits for the render (the grace), and once while
uvicorn still waits for a request in flight, before the app's shutdown has begun (uvicorn would then
skip that shutdown, and with it the worker's releases)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from tests.e2e.proc_tree import is_running, render_children
from tests.e2e.processes import Deployment, wait_until, write_config
from vidgate.store.db import sync_url
from vidgate.store.tables import tasks

pytestmark = pytest.mark.slow
ANIMATE = {"name": "animate", "kind": "animate", "models": ["sora-2"]}


def hold_a_request_open(base_url: str, key: str) -> socket.socket:
    """A create whose body never finishes arriving: uvicorn waits for it when it stops gracefully."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /v1/video/create HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    sock.sendall(head.encode())
    # A request on a second connection, answered: the server's loop has read the first one's head by
    # then (it accepted that connection first, and its bytes were there before the second connected).
    assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200
    return sock


@pytest.mark.parametrize(
    ("command", "first_stop_reaches"),
    [
        ("serve", "waiting for running steps"),
        ("serve", "Waiting for connections to close"),
        ("worker", "waiting for running steps"),
    ],
    ids=["serve", "serve-request-in-flight", "worker"],
)
def test_a_second_sigint_stops_at_once_and_releases_the_rendering_task(
    tmp_path: Path, db_url: str, command: str, first_stop_reaches: str
) -> None:
    config = write_config(
        tmp_path / "vidgate.toml",
        worker={"lease_seconds": 60, "idle_poll_seconds": 0.1, "shutdown_grace_seconds": 30},
        channels=[ANIMATE],
    )
    dep = Deployment(tmp_path, db_url, config)
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        key = dep.new_key()
        api_server = dep.serve("--no-worker") if command == "worker" else dep.serve()
        with dep.client(key, timeout=5) as api:
            body = {"model": "sora-2", "prompt": "long", "size": "large", "duration": 25}
            made = api.post("/v1/video/create", json=body)
            assert made.status_code == 200
            task_id = made.json()["id"].split(":task_")[1]
        proc = dep.start("worker", log_name="worker") if command == "worker" else api_server
        renders = wait_until(lambda: render_children(proc.pid), timeout=60, what="the render to start")
        if "connections" in first_stop_reaches:
            stack.enter_context(contextlib.closing(hold_a_request_open(dep.base_url, key)))

        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group, the render included
        wait_until(lambda: first_stop_reaches in dep.log(command), timeout=30, what="the graceful stop")
        assert all(is_running(pid) for pid in renders)  # the render ignored it: it may finish in the grace
        if "running steps" in first_stop_reaches:  # on stderr: what it waits for, and how not to (issue 21)
            [said] = [line for line in dep.log(command).splitlines() if first_stop_reaches in line]
            assert f"1 task: the render of task {task_id} on animate" in said, said
            assert "(up to 30 s)" in said and "press Ctrl-C again" in said and "stop them at once" in said
        second = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        assert time.monotonic() - second < 10, "the second Ctrl-C waited for the grace period"
        assert not any(is_running(pid) for pid in renders)

        engine = create_engine(sync_url(db_url))
        with engine.connect() as conn:
            row = conn.execute(select(tasks.c.status, tasks.c.lease_owner, tasks.c.lease_expires_at)).one()
        engine.dispose()
        assert tuple(row) in (("pending", None, None), ("processing", None, None)), tuple(row)
    # A forced stop cuts the request in flight: uvicorn logs that (after the app's shutdown), nothing else.
    log = dep.log(command).split("Application shutdown complete")[0]
    assert "worker stopped" in log and "Traceback" not in log, log[-3000:]
