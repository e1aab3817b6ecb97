"""scripts/scale-out, the documented recipe (docs/scaling.md), run as written: two API processes and three
workers on one PostgreSQL database. Tasks made through the API all complete although a worker holding
one of them is killed with SIGKILL; a SIGTERM to the script then ends every process it started."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from tests.e2e.proc_tree import is_running, with_environment
from tests.e2e.processes import wait_for_task_end, wait_until, write_config
from vidgate.store.db import sync_url
from vidgate.store.tables import tasks
from vidgate.testing.databases import create_pg_database, drop_pg_database
from vidgate.testing.server import bind_loopback

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "scale-out"
TASKS = 20


def leased_worker_pids(url: str) -> set[int]:
    """The pids of the workers holding a task now (a worker's id is host:pid:random)."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            owners = conn.execute(
                select(tasks.c.lease_owner).where(tasks.c.lease_owner.is_not(None))
            ).scalars()
            return {int(owner.split(":")[1]) for owner in owners}
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_the_recipe_survives_a_killed_worker_and_stops_cleanly(tmp_path: Path, pg_admin_url: str) -> None:
    url = create_pg_database(pg_admin_url)
    run_dir = tmp_path / "run"
    config = write_config(
        tmp_path / "vidgate.toml",
        worker={"lease_seconds": 3, "idle_poll_seconds": 0.1, "concurrency": 4},
        # A kill that lands during a submit leaves its outcome unknown: the next worker looks for the job
        # from a request timeout after the create was sent until the lookup window ends (by default 60 s
        # and 300 s; here a few seconds, so that such a task also completes within the test's wait).
        channel={
            "name": "relay",
            "kind": "scripted",
            "models": ["sora-2"],
            "request_timeout_seconds": 2,
            "lookup_window_seconds": 5,
        },
        # Slow submits and several polls per task, so that tasks are in flight (leased), some of them in a
        # submit, when the worker is killed.
        options={
            "state_dir": str(tmp_path / "upstream"),
            "submit_seconds": 0.5,
            "polls": 4,
            "poll_after": 0.3,
            "clip_scale": 40,
        },
    )
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_") or k.startswith("VIDGATE_TEST_")
    }
    env |= {
        "VIDGATE_DATABASE_URL": url,
        "VIDGATE_CONFIG": str(config),
        "VIDGATE_PORT": str(port),
        "VIDGATE_LOG_FORMAT": "json",
        "VIDGATE_CMD": f"{sys.executable} -m vidgate",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "scale-out.log"
    with contextlib.ExitStack() as stack:
        stack.callback(drop_pg_database, pg_admin_url, url)
        with log_path.open("ab") as log:
            script = subprocess.Popen(
                ["bash", str(SCRIPT), "--run-dir", str(run_dir)],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

        def kill_everything() -> None:  # only if the test failed before its own stop
            if script.poll() is None:
                os.kill(script.pid, signal.SIGKILL)
            for pid in with_environment(str(run_dir)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        stack.callback(kill_everything)

        def script_log() -> str:
            return log_path.read_text(errors="replace")

        wait_until(lambda: "scale-out: ready" in script_log(), timeout=180, what="the recipe to be ready")
        secret = run_dir / "secret_key"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text().strip()
        pids = {p.stem: int(p.read_text()) for p in (run_dir / "pids").glob("*.pid")}
        assert sorted(pids) == ["api", "worker-1", "worker-2", "worker-3"]

        key = subprocess.run(
            [sys.executable, "-m", "vidgate", "keys", "create", "--name", "recipe"],
            env=env | {"VIDGATE_DATA_DIR": str(run_dir / "data")},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.splitlines()[-1]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {key}"}, timeout=30
        ) as api:
            ids = []
            for i in range(TASKS):
                response = api.post("/v1/video/create", json={"model": "sora-2", "prompt": f"recipe {i}"})
                assert response.status_code == 200, response.text
                ids.append(response.json()["id"])

            workers = {pids[f"worker-{i}"] for i in (1, 2, 3)}
            victim = wait_until(
                lambda: next(iter(leased_worker_pids(url) & workers), None),
                timeout=120,
                what="a worker holding a task",
            )
            os.kill(victim, signal.SIGKILL)
            wait_until(
                lambda: "ended with status 137 on its own" in script_log(), timeout=30, what="the death"
            )

            for task_id in ids:
                final = wait_for_task_end(api, task_id, timeout=180, what=f"task {task_id}")
                assert final["status"] == "completed", final
        assert script.poll() is None, "the recipe stopped when one worker died"
        survivors = [pid for pid in pids.values() if pid != victim]
        assert all(is_running(pid) for pid in survivors)

        os.kill(script.pid, signal.SIGTERM)
        assert script.wait(timeout=120) == 1  # 1: a worker had died on its own; the rest ended cleanly
        assert not any(is_running(pid) for pid in survivors)
        wait_until(lambda: not with_environment(str(run_dir)), timeout=10, what="every process to end")
        assert list((run_dir / "pids").glob("*.pid")) == []
    out = script_log()
    assert "SIGTERM: stopping" in out and "every process has ended" in out, out
    assert out.count("ended with status") == 1, out  # the killed worker only
    api_log = (run_dir / "logs" / "api.log").read_text()
    assert api_log.count("Started server process") == 2, api_log[-3000:]
    for name in ("api", "worker-1", "worker-2", "worker-3"):
        text = (run_dir / "logs" / f"{name}.log").read_text()
        assert "Traceback" not in text, text[-3000:]


FAKE_VIDGATE = """#!/bin/sh
echo "$0 $*" >>"$CALLS"
exit 1
"""


def test_the_recipe_finds_the_checkouts_venv_and_keeps_its_key_private(tmp_path: Path) -> None:
    """Run from another folder, with no virtualenv active: the checkout's .venv/bin/vidgate is used (else
    one on PATH); with none, it says how to install it. The fake vidgate fails `db upgrade`, where the
    recipe stops, after writing the secret key (0600, also when an earlier one had looser modes)."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, checkout / "scripts" / "scale-out")
    venv_vidgate = checkout / ".venv" / "bin" / "vidgate"
    path_vidgate = tmp_path / "bin" / "vidgate"
    for fake in (venv_vidgate, path_vidgate):
        fake.parent.mkdir(parents=True)
        fake.write_text(FAKE_VIDGATE)
        fake.chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = tmp_path / "run"
    calls = tmp_path / "calls"
    env = {
        "PATH": f"{path_vidgate.parent}:/usr/bin:/bin",
        "CALLS": str(calls),
        "VIDGATE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/never_reached",
    }

    def recipe(**extra_env: str) -> subprocess.CompletedProcess[str]:
        calls.unlink(missing_ok=True)
        return subprocess.run(
            ["bash", str(checkout / "scripts" / "scale-out"), "--run-dir", str(run_dir)],
            cwd=elsewhere,
            env=env | extra_env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    done = recipe()
    assert done.returncode == 1 and "vidgate db upgrade failed" in done.stderr, done.stderr
    assert calls.read_text() == f"{venv_vidgate} db upgrade\n"
    secret = run_dir / "secret_key"
    key = secret.read_text()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(key) >= 40

    secret.chmod(0o644)
    venv_vidgate.unlink()
    done = recipe()
    assert done.returncode == 1, done.stderr
    assert calls.read_text() == f"{path_vidgate} db upgrade\n"  # found on PATH
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text() == key

    done = recipe(VIDGATE_CMD=f"{path_vidgate} --flag")
    assert calls.read_text() == f"{path_vidgate} --flag db upgrade\n"

    path_vidgate.unlink()
    if shutil.which("vidgate", path="/usr/bin:/bin"):
        return  # this machine has one of its own there
    done = recipe()
    assert done.returncode == 2 and not calls.exists()
    assert "no vidgate to run" in done.stderr and f"make -C {checkout} .venv/.installed" in done.stderr
