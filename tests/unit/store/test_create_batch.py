"""New tasks on SQLite committed in groups (store/create_batch.py), against a real database file in
tmp_path, with the writer built as `open_runtime` builds it (the engine's writer lock).

SQLite only: on PostgreSQL grouped creates are `TaskCreates._insert_group` (store/tasks/creates.py),
which tests/contract/test_task_store_contract.py runs with this writer's create paths on both databases.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from tests.conftest import SettingsFactory
from vidgate.errors import InsufficientQuota
from vidgate.ids import new_ulid
from vidgate.runtime import Runtime, open_runtime
from vidgate.store import db
from vidgate.store.create_batch import DB_NOW, DbNowPlus, NewTask, SqliteCreateWriter
from vidgate.store.tables import ledger_entries, task_events, tasks

pytestmark = pytest.mark.anyio
T0 = 1_760_000_000_000
DEADLINE_MS = 3_600_000


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


@dataclass
class Db:
    runtime: Runtime
    writer: SqliteCreateWriter
    owner: str
    groups: list[list[str]]  # the task ids of each group the writer committed, in order

    async def key(self, balance: int | None = None) -> str:
        key, _ = await self.runtime.keys.create(name="k", is_admin=False, now=T0, balance=balance)
        return key.id

    async def account(self, key_id: str) -> tuple[int | None, int]:
        key = await self.runtime.keys.get(key_id)
        assert key is not None
        return key.balance, key.held

    async def column(self, table: Any, *where: Any) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            return list((await conn.execute(select(table).where(*where))).mappings())


@pytest.fixture
async def sqlite(make_settings: SettingsFactory) -> AsyncIterator[Db]:
    async with open_runtime(make_settings()) as runtime:
        lock = db.sqlite_writer_lock(runtime.engine)
        assert lock is not None
        writer = SqliteCreateWriter(make_url(runtime.settings.resolved_database_url).database or "", lock)
        groups: list[list[str]] = []
        write_group = writer._write_group

        def recorded(group: Sequence[NewTask]) -> list[Exception | None]:
            groups.append([new.row["id"] for new in group])
            return write_group(group)

        writer._write_group = recorded  # type: ignore[method-assign]
        owner, _ = await runtime.keys.create(name="owner", is_admin=False, now=T0)
        try:
            yield Db(runtime, writer, owner.id, groups)
        finally:
            writer.close()


def new_task(owner: str, *, key: str | None = None, hold: int = 0, task_id: str | None = None) -> NewTask:
    """A new task's row as store/tasks/creates.py builds it, due now and ending in an hour by the
    database's clock."""
    ulid = task_id or new_ulid()
    row = {
        "id": ulid,
        "owner": owner,
        "dialect": "unified",
        "model": "sora-2",
        "prompt": "a red fox",
        "images": ["https://img.test/fox.png"],
        "width": 720,
        "height": 1280,
        "seconds": 10,
        "orientation": "portrait",
        "size_label": "small",
        "watermark_mode": "prefer_clean",
        "private": False,
        "input": {"model": "sora-2", "prompt": "a red fox", "duration": 10},
        "status": "pending",
        "step": "ingest",
        "inputs": None,
        "progress": 0,
        "created_at": T0,
        "status_update_time": T0,
        "attempts": 0,
        "version": 0,
        "idempotency_key": key,
        "hold_amount": hold or None,
        "next_run_at": DB_NOW,
        "deadline_at": DbNowPlus(DEADLINE_MS),
    }
    event = {"task_id": ulid, "at": T0, "kind": "created", "to_status": "pending", "step": "ingest"}
    return NewTask(row, event, hold, DEADLINE_MS)


async def insert_together(store: Db, news: Sequence[NewTask]) -> list[Exception | None]:
    """Insert `news` concurrently, all queued while the writer lock is held by someone else, so that
    they go in one group (after a lone first one that took the lock queue's head)."""
    outcomes: list[Exception | None] = [None] * len(news)

    async def insert(i: int) -> None:
        try:
            await store.writer.insert(news[i])
        except Exception as exc:
            outcomes[i] = exc

    lock = db.sqlite_writer_lock(store.runtime.engine)
    assert lock is not None
    async with anyio.create_task_group() as tg:
        async with lock:  # another writer (an API request's transaction) holds the database
            for i in range(len(news)):
                tg.start_soon(insert, i)
            await anyio.sleep(0.05)  # everyone is queued behind it
    return outcomes


async def test_a_create_is_committed_with_its_event_and_reads_back_whole(sqlite: Db) -> None:
    new = new_task(sqlite.owner)
    await sqlite.writer.insert(new)
    task = await sqlite.runtime.tasks.get(new.row["id"])
    assert task is not None and task.owner == sqlite.owner
    assert task.images == ("https://img.test/fox.png",) and task.input["duration"] == 10  # JSON columns
    [event] = await sqlite.column(task_events, task_events.c.task_id == task.id)
    assert (event["kind"], event["to_status"], event["step"]) == ("created", "pending", "ingest")
    assert sqlite.groups == [[task.id]]  # nothing waits for a group to fill


async def test_due_time_and_deadline_are_on_the_databases_clock(sqlite: Db) -> None:
    before = round(time.time() * 1000)
    new = new_task(sqlite.owner)
    await sqlite.writer.insert(new)
    after = round(time.time() * 1000)
    [row] = await sqlite.column(tasks, tasks.c.id == new.row["id"])
    assert before - 5 <= row["next_run_at"] <= after + 5  # not the row's created_at (T0)
    assert row["deadline_at"] - row["next_run_at"] == DEADLINE_MS


async def test_creates_that_arrive_while_the_database_is_busy_share_one_commit(sqlite: Db) -> None:
    news = [new_task(sqlite.owner) for _ in range(12)]
    outcomes = await insert_together(sqlite, news)
    assert outcomes == [None] * 12
    assert sorted(len(group) for group in sqlite.groups) == [1, 11]  # the first, then everyone queued
    assert sorted(id_ for group in sqlite.groups for id_ in group) == sorted(n.row["id"] for n in news)
    assert len(await sqlite.column(tasks.c.id)) == 12


async def test_a_duplicate_idempotency_key_fails_that_create_alone(sqlite: Db) -> None:
    first, twin = new_task(sqlite.owner, key="k-1"), new_task(sqlite.owner, key="k-1")
    news = [new_task(sqlite.owner), first, twin, new_task(sqlite.owner)]
    outcomes = await insert_together(sqlite, news)
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "NoneType", "IntegrityError", "NoneType"]
    assert isinstance(outcomes[2], IntegrityError)
    saved = {row["id"] for row in await sqlite.column(tasks.c.id)}
    assert saved == {news[0].row["id"], first.row["id"], news[3].row["id"]}
    assert await sqlite.column(task_events, task_events.c.task_id == twin.row["id"]) == []


async def test_a_hold_is_made_with_its_task_and_one_the_key_cannot_cover_fails_alone(sqlite: Db) -> None:
    payer = await sqlite.key(balance=1_000)
    covered, uncovered = new_task(payer, hold=600), new_task(payer, hold=600)
    outcomes = await insert_together(sqlite, [covered, uncovered])
    assert outcomes[0] is None and isinstance(outcomes[1], InsufficientQuota)
    assert await sqlite.account(payer) == (1_000, 600)
    holds = await sqlite.column(
        ledger_entries, ledger_entries.c.key_id == payer, ledger_entries.c.kind == "hold"
    )
    assert [(e["task_id"], e["amount"]) for e in holds] == [(covered.row["id"], 600)]
    assert [r["id"] for r in await sqlite.column(tasks.c.id)] == [covered.row["id"]]


async def test_a_create_refused_after_its_hold_takes_the_hold_back(sqlite: Db) -> None:
    payer = await sqlite.key(balance=1_000)
    await sqlite.writer.insert(new_task(payer, key="k-1", hold=300))
    with pytest.raises(IntegrityError):
        await sqlite.writer.insert(new_task(payer, key="k-1", hold=300))
    assert await sqlite.account(payer) == (1_000, 300)  # only the first one's hold
    holds = await sqlite.column(
        ledger_entries, ledger_entries.c.key_id == payer, ledger_entries.c.kind == "hold"
    )
    assert [e["amount"] for e in holds] == [300]


async def test_a_create_returns_only_once_its_group_is_on_disk(sqlite: Db) -> None:
    await sqlite.writer.insert(new_task(sqlite.owner))
    conn = sqlite.writer._conn
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: COMMIT waits for the fsync
