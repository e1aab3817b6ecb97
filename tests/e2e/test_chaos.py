"""Chaos: many tasks with injected upstream faults, while worker processes are killed with SIGKILL every
few seconds and restarted. At the end every task is terminal in the state its faults call for, no task
made more than one upstream job, each task's events form a valid path, and the key that paid for them
was charged exactly the price of its completed tasks (every hold resolved once, refunds for failures).

Bounded and loopback only. The default run (CI) is short; `make chaos` runs the full one:
300 tasks over 3 `vidgate worker` processes on PostgreSQL (`VIDGATE_CHAOS_TASKS=300`). The SQLite
version kills and restarts one `vidgate serve` process with its embedded worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.processes import Deployment, FakeUpstreamProcess, write_config
from tests.ledger_checks import Rows, check_ledger, read_ledger
from vidgate.domain.tasks import TaskStatus
from vidgate.domain.transitions import ALLOWED
from vidgate.money import parse_credits
from vidgate.store import db
from vidgate.store.tables import task_events, tasks

pytestmark = [pytest.mark.slow, pytest.mark.chaos]
FAKE_KEY = "sk-chaos"
PG_TASKS = int(os.environ.get("VIDGATE_CHAOS_TASKS", "60"))
SQLITE_TASKS = int(os.environ.get("VIDGATE_CHAOS_SQLITE_TASKS", "30"))


@dataclass(frozen=True)
class Fault:
    directives: str
    status: str = "completed"  # what the task must end as
    code: str | None = None
    jobs: int = 1  # upstream jobs it must make (exactly)


# Every fault the fake can inject that a task survives, and two that must fail it. Models pick the
# adapter: sora-2 goes to the openai channel, sora-2-pro to the unified one.
FAULTS = [
    Fault(""),
    Fault("#429=2"),
    Fault("#5xx=2"),
    Fault("#accept_then_drop=1"),
    Fault("#accept_then_hang=1"),
    Fault("#poll5xx=2"),
    Fault("#poll_hang=1"),
    Fault("#malformed=1"),
    Fault("#synonyms"),
    Fault("#unknown_status=2"),
    Fault("#expired_link=1"),
    Fault("#moderation", "failed", "content_policy", jobs=0),
    Fault("#fail=invalid_prompt", "failed", "invalid_prompt"),
]


# Every task is priced, so the ledger goes through every kill too: 10 s of sora-2 costs 2 credits
# (1 per clip + 0.1 per second), sora-2-pro 3 per clip.
PRICING = {"sora-2": {"per_clip": 1, "per_second": "0.1"}, "sora-2-pro": {"per_clip": 3}}
PRICE = {"sora-2": parse_credits("2"), "sora-2-pro": parse_credits("3")}
OPENING_BALANCE = "100000"


def chaos_config(path: Path, upstream: str) -> Path:
    common = {
        "api_key": FAKE_KEY,
        "base_url": f"{upstream}/v1",
        "request_timeout_seconds": 2,
        "poll_timeout_seconds": 2,
        "honours_idempotency_key": False,
    }
    return write_config(
        path,
        worker={
            "concurrency": 16,
            "lease_seconds": 3,
            "idle_poll_seconds": 0.2,
            "retry_base_seconds": 0.2,
            "retry_max_seconds": 2,
            "task_deadline_seconds": 600,
            "circuit_failures": 1000,
        },
        channels=[
            {
                "name": "openai-up",
                "kind": "openai",
                "models": ["sora-2"],
                **common,
                "pricing": {"sora-2": PRICING["sora-2"]},
            },
            # The unified dialect cannot be asked about a job: it relies on the fake deduping keys.
            {
                "name": "unified-up",
                "kind": "unified",
                "models": ["sora-2-pro"],
                **common,
                "honours_idempotency_key": True,
                "pricing": {"sora-2-pro": PRICING["sora-2-pro"]},
            },
        ],
    )


def create_tasks(dep: Deployment, key: str, n: int, seed: int) -> dict[str, tuple[str, Fault]]:
    """`key`: made with OPENING_BALANCE (see `new_paying_key`)."""
    rng = random.Random(seed)
    created: dict[str, tuple[str, Fault]] = {}
    with dep.client(key, timeout=30) as api:
        for i in range(n):
            fault = FAULTS[i % len(FAULTS)]
            text = f"chaos task {i} {rng.randrange(10**9)} #ready={rng.uniform(4, 24):.1f} {fault.directives}"
            model = "sora-2" if i % 2 == 0 else "sora-2-pro"
            r = api.post("/v1/video/create", json={"model": model, "prompt": text.strip(), "duration": 10})
            assert r.status_code == 200, r.text
            created[r.json()["id"].rsplit("_", 1)[-1]] = (text.strip(), fault)
    return created


async def _rows(url: str) -> tuple[dict[str, tuple[str, str | None]], dict[str, list[tuple[str, str]]]]:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            states = {
                r[0]: (r[1], r[2])
                for r in await conn.execute(select(tasks.c.id, tasks.c.status, tasks.c.error_code))
            }
            query = select(
                task_events.c.task_id, task_events.c.kind, task_events.c.from_status, task_events.c.to_status
            )
            paths: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
            for task_id, kind, from_status, to_status in await conn.execute(query.order_by(task_events.c.id)):
                if kind in ("created", "status"):
                    paths[task_id].append((from_status or "", to_status))
        return states, paths
    finally:
        await engine.dispose()


def new_paying_key(dep: Deployment) -> str:
    return dep.new_key("--balance", OPENING_BALANCE)


async def _ledger(url: str) -> tuple[Rows, Rows, Rows]:
    engine = db.create_engine(url)
    try:
        return await read_ledger(engine)
    finally:
        await engine.dispose()


def check_charges(url: str, created: dict[str, tuple[str, Fault]]) -> None:
    """Every hold resolved exactly once; completed tasks charged their price, failed ones refunded."""
    keys, entries, task_rows = asyncio.run(_ledger(url))
    moves = check_ledger(keys, entries, task_rows)
    assert set(created) <= {row["id"] for row in task_rows}
    charged = 0
    for row in task_rows:
        assert row["hold_amount"] == PRICE[row["model"]], row
        expected = row["hold_amount"] if row["status"] == "completed" else 0
        assert moves[row["id"]].get("capture", 0) == expected, (row, moves[row["id"]])
        charged += expected
    [paying] = [k for k in keys if k["balance"] is not None]
    assert paying["balance"] == parse_credits(OPENING_BALANCE) - charged
    assert paying["held"] == 0


def active_count(url: str) -> int:
    states, _ = asyncio.run(_rows(url))
    return sum(1 for status, _ in states.values() if status in ("pending", "processing"))


def check_outcome(url: str, created: dict[str, tuple[str, Fault]], upstream: FakeUpstreamProcess) -> None:
    states, paths = asyncio.run(_rows(url))
    journal = upstream.journal(op="create")
    jobs_per_prompt = collections.Counter(e["prompt"] for e in journal)
    problems = []
    for task_id, (text, fault) in created.items():
        status, code = states[task_id]
        if (status, code if status == "failed" else None) != (fault.status, fault.code):
            problems.append(f"{task_id} {fault.directives!r}: ended {status}/{code}")
        if jobs_per_prompt[text] != fault.jobs:
            problems.append(f"{task_id} {fault.directives!r}: {jobs_per_prompt[text]} upstream jobs")
        path = paths[task_id]
        if not path or path[0] != ("", "pending"):
            problems.append(f"{task_id}: events do not start with created/pending: {path}")
        for (_, before), (frm, to) in itertools.pairwise(path):
            if frm != before or TaskStatus(to) not in ALLOWED[TaskStatus(before)]:
                problems.append(f"{task_id}: invalid transition {before} -> {frm}->{to} in {path}")
        terminal = [to for _, to in path if TaskStatus(to).is_terminal]
        if terminal != [status]:
            problems.append(f"{task_id}: terminal events {terminal}, final status {status}")
    assert not problems, "\n".join(problems[:40])


def killer_loop(
    dep: Deployment,
    roles: list[tuple[str, tuple[str, ...]]],
    url: str,
    *,
    every: tuple[float, float],
    deadline_s: float,
    seed: int,
) -> int:
    """Kill a random process of `roles` with SIGKILL every few seconds and restart it, until no task is
    active (or the deadline passes). Returns how many kills there were."""
    rng = random.Random(seed)
    running = {name: dep.start(*args, log_name=name) for name, args in roles}
    kills = 0
    deadline = time.monotonic() + deadline_s
    next_kill = time.monotonic() + rng.uniform(*every)
    while active_count(url):
        assert time.monotonic() < deadline, "the tasks did not all end in time"
        if time.monotonic() >= next_kill:
            name, args = rng.choice(roles)
            Deployment.kill9(running[name])
            kills += 1
            running[name] = dep.start(*args, log_name=name)
            next_kill = time.monotonic() + rng.uniform(*every)
        time.sleep(0.25)
    return kills


@pytest.mark.postgres
def test_chaos_three_workers_on_postgres_killed_at_random(tmp_path: Path, pg_admin_url: str) -> None:
    url = create_pg_database(pg_admin_url)
    config = tmp_path / "vidgate.toml"
    dep = Deployment(tmp_path, url, config)
    with contextlib.ExitStack() as stack:
        stack.callback(drop_pg_database, pg_admin_url, url)
        stack.callback(dep.stop_all)
        upstream = FakeUpstreamProcess(dep, api_key=FAKE_KEY, ready=2, hang=6, poll_after_ms=300)
        chaos_config(config, upstream.url)
        key = new_paying_key(dep)
        dep.serve("--no-worker")
        started = time.monotonic()
        created = create_tasks(dep, key, PG_TASKS, seed=7)
        roles = [(f"worker{i}", ("worker",)) for i in range(3)]
        kills = killer_loop(dep, roles, url, every=(1.5, 3.5), deadline_s=300 + PG_TASKS * 2, seed=11)
        check_outcome(url, created, upstream)
        check_charges(url, created)
        print(f"\nchaos: {PG_TASKS} tasks, 3 workers, {kills} SIGKILLs, {time.monotonic() - started:.0f} s")
    for i in range(3):
        assert "Traceback" not in dep.log(f"worker{i}"), dep.log(f"worker{i}")[-3000:]


def test_chaos_one_serving_process_on_sqlite_killed_at_random(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"
    config = tmp_path / "vidgate.toml"
    dep = Deployment(tmp_path, url, config)
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        upstream = FakeUpstreamProcess(dep, api_key=FAKE_KEY, ready=2, hang=6, poll_after_ms=300)
        chaos_config(config, upstream.url)
        key = new_paying_key(dep)
        server = dep.serve()
        created = create_tasks(dep, key, SQLITE_TASKS, seed=3)
        Deployment.kill9(server)  # from here on the killer owns the serving process
        dep.processes.remove(server)
        kills = killer_loop(dep, [("serve", ("serve",))], url, every=(2.0, 5.0), deadline_s=300, seed=5)
        check_outcome(url, created, upstream)
        check_charges(url, created)
        print(f"\nchaos (sqlite): {SQLITE_TASKS} tasks, 1 process, {kills} SIGKILLs")
    assert "Traceback" not in dep.log("serve"), dep.log("serve")[-3000:]
