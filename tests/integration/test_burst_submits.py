"""What a burst of creates costs the worker, per task (bench/burst_submit.py measures the whole):

- a claim finds due rows through the partial index `ix_tasks_due`, never by scanning the whole table
  (with bound values in its predicate SQLite could not match the index and scanned every task);
- a submit to an upstream channel makes no scratch directory (and so sweeps none): only a built-in
  engine's submit (its render) writes files;
- an accepted create on a healthy channel records its success with a read, not a write transaction;
- on PostgreSQL, a create NOTIFYs the workers in its own transaction (worker/wakeups.py listens);
- a paid submit saves its intent and its attempt in one transaction, before the create is sent;
- a SQLite engine keeps its connections: concurrent reads do not open (and close) one each.

Each fails on the code before these changes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tests.helpers import new_task, scripted_channel
from vidgate.channel_config import ChannelSettings
from vidgate.domain.tasks import Step
from vidgate.store import channels as channel_store
from vidgate.store.tasks import DUE_CHANNEL
from vidgate.worker import runner
from vidgate.worker.runner import MEDIA_STEPS
from vidgate.worker.service import build_worker
from vidgate.worker.wakeups import listener_conninfo

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_claim_finds_due_tasks_through_the_partial_index(start_gateway, tmp_path) -> None:
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        for _ in range(3):
            await new_task(gw)
        seen: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if statement.startswith("UPDATE tasks"):
                seen.append((statement, params))

        engine = gw.runtime.engine.sync_engine
        event.listen(engine, "before_cursor_execute", capture)
        try:
            for kwargs in ({}, {"skip": MEDIA_STEPS}, {"only": MEDIA_STEPS}):
                await gw.runtime.tasks.claim_due(worker="w", limit=1, lease_ms=60_000, **kwargs)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        path = make_url(gw.settings.resolved_database_url).database
        assert path is not None and len(seen) == 3
        with sqlite3.connect(path) as db:
            for statement, params in seen:
                plan = " / ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", params))
                assert "ix_tasks_due" in plan, plan
                assert "SCAN tasks" not in plan, plan


def recording_dirs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    made: list[Path] = []
    original = runner.make_private_dirs

    def record(path: Path, *args: Any, **kwargs: Any) -> None:
        made.append(path)
        original(path, *args, **kwargs)

    monkeypatch.setattr(runner, "make_private_dirs", record)
    return made


async def test_an_upstream_submit_makes_no_scratch_directory(start_gateway, tmp_path, monkeypatch) -> None:
    made = recording_dirs(monkeypatch)
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        task = await new_task(gw)
        worker = build_worker(gw.runtime)
        assert await worker.tick() == 1  # the submit
        assert (await gw.runtime.tasks.get(task.id)).upstream_id is not None
    assert made == []


async def test_a_built_in_engine_submit_still_gets_its_scratch_directory(start_gateway) -> None:
    animate = ChannelSettings(name="animate", kind="animate", models=["sora-2"])
    async with start_gateway(run_worker=False, channels=[animate]) as gw:
        assert Step.SUBMIT in build_worker(gw.runtime).steps_with_files  # its render writes files


async def test_a_success_on_a_healthy_channel_is_a_read(start_gateway, tmp_path, monkeypatch) -> None:
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        health = gw.runtime.health
        await health.record_success("scripted")  # makes the row
        writes = 0
        original = channel_store.write_transaction

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal writes
            writes += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(channel_store, "write_transaction", counting)
        for _ in range(3):
            await health.record_success("scripted")
        assert writes == 0
        await health.record_failure("scripted", "boom")
        await health.record_success("scripted")  # a failure to reset: that one writes
        assert writes == 2
        assert (await health.snapshot(fresh=True))["scripted"].failures == 0


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_create_notifies_the_workers_on_postgresql(start_gateway, tmp_path) -> None:
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        conninfo = listener_conninfo(gw.settings.resolved_database_url)
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {DUE_CHANNEL}")
            await new_task(gw)
            with anyio.fail_after(10):
                async for notice in conn.notifies():
                    assert notice.channel == DUE_CHANNEL
                    break


def recording_statements(engine: Any) -> list[str]:
    """Every statement the engine sends, COMMIT included, in order (for the duration of the test)."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: seen.append(statement))
    event.listen(engine, "commit", lambda _conn: seen.append("COMMIT"))
    return seen


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_paid_submit_saves_its_intent_and_its_attempt_in_one_transaction(
    start_gateway, tmp_path
) -> None:
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        task = await new_task(gw)
        seen = recording_statements(gw.runtime.engine.sync_engine)
        assert await build_worker(gw.runtime).tick() == 1  # the submit
        assert (await gw.runtime.tasks.get(task.id)).upstream_id is not None
    intent = next(i for i, s in enumerate(seen) if s.startswith("UPDATE tasks") and "submit_intent_at=" in s)
    attempt = next(i for i, s in enumerate(seen) if s.startswith("INSERT INTO upstream_attempts"))
    assert intent < attempt and "COMMIT" not in seen[intent:attempt], seen[intent : attempt + 1]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_sqlite_engine_keeps_its_connections_for_concurrent_reads(start_gateway, tmp_path) -> None:
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        engine = gw.runtime.engine
        opened = 0

        def count(*_: Any) -> None:
            nonlocal opened
            opened += 1

        async def reads() -> None:  # as many at once as a worker's steps
            async with anyio.create_task_group() as tg:
                for _ in range(16):
                    tg.start_soon(gw.runtime.tasks.now_ms)

        await reads()
        event.listen(engine.sync_engine, "connect", count)
        await reads()
        assert opened == 0
