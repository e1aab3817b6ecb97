"""The hot paths' shortcuts (fast reads, the key cache, grouped creates, the SQLite writer lock) give
the same answers as the slow paths, keep owners apart, and keep a create's promise (on disk at 200)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import func, select, update

from tests.conftest import Gateway, SettingsFactory
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import WatermarkMode
from vidgate.errors import Conflict
from vidgate.runtime import open_runtime
from vidgate.store import db
from vidgate.store.fast_reads import FastReads
from vidgate.store.key_cache import KeyCache
from vidgate.store.keys import KeyStore
from vidgate.store.tables import task_events, tasks
from vidgate.store.tasks import TaskStore
from vidgate.views import openai_view

pytestmark = pytest.mark.anyio


def spec(prompt: str = "a cat", images: tuple[str, ...] = ()) -> VideoSpec:
    return VideoSpec("sora-2", prompt, images, 720, 1280, 4, WatermarkMode.PREFER_CLEAN)


async def test_fast_reads_match_the_orm_reads(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with open_runtime(settings) as runtime:
        owner = (await runtime.keys.create(name="a", is_admin=False, now=1))[0].id
        other = (await runtime.keys.create(name="b", is_admin=False, now=1))[0].id
        made = [
            await runtime.tasks.create(
                spec(f"t{i}", ("https://example.com/a.png",) if i % 2 else ()),
                owner=owner,
                dialect="openai",
                now=1000 + i,
                deadline_ms=60_000,
            )
            for i in range(5)
        ]
        plain = TaskStore(runtime.engine)  # no fast reads: SQLAlchemy's Core all the way
        summaries, _ = await runtime.tasks.list_page(owner=owner, after=None, limit=10, descending=False)
        for summary, task in zip(summaries, made, strict=True):  # a list shows what a retrieve shows
            assert openai_view(runtime, summary) == openai_view(runtime, task)
        for task in made:
            fast = await runtime.tasks.get(task.id, owner=owner)
            assert fast == await plain.get(task.id, owner=owner)
            assert await runtime.tasks.get(task.id, owner=other) is None  # another key's task: nothing
            assert await runtime.tasks.get(task.id) == fast
        for descending in (True, False):
            for after in (None, made[2].id):
                assert await runtime.tasks.list_page(
                    owner=owner, after=after, limit=2, descending=descending
                ) == await plain.list_page(owner=owner, after=after, limit=2, descending=descending)
        assert await runtime.tasks.list_page(owner=other, after=None, limit=10, descending=True) == (
            [],
            False,
        )
        deleted = await runtime.tasks.soft_delete(made[0].id, owner=owner, now=2000)
        assert deleted is not None
        assert await runtime.tasks.get(made[0].id, owner=owner) is None
        assert (await runtime.tasks.get(made[0].id, include_deleted=True)) is not None


async def test_a_dropped_postgres_connection_is_read_again(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's server-side disconnect")
    async with open_runtime(settings) as runtime:
        record, _ = await runtime.keys.create(name="a", is_admin=False, now=1)
        task = await runtime.tasks.create(
            spec(), owner=record.id, dialect="openai", now=1, deadline_ms=60_000
        )
        reads = FastReads(settings.resolved_database_url, pool_size=1)
        try:
            assert await reads.task(task.id, owner=record.id) == await runtime.tasks.get(task.id)
            async with runtime.engine.connect() as conn:  # kill the pooled read connection's backend
                await conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname = current_database() AND state = 'idle'"
                )
            assert await reads.task(task.id, owner=record.id) is not None
        finally:
            await reads.aclose()


async def test_a_cached_key_stops_working_once_revoked(make_settings: SettingsFactory) -> None:
    """Revoked in this process: at once. Revoked by another process: within the cache's lifetime."""
    settings = make_settings()
    now = [100.0]
    async with open_runtime(settings) as runtime:
        cached = KeyStore(runtime.engine, cache_seconds=5)
        cached._cache = KeyCache(5, clock=lambda: now[0])
        record, plaintext = await cached.create(name="a", is_admin=False, now=1)
        assert (await cached.authenticate(plaintext)) == record
        elsewhere = KeyStore(runtime.engine)  # another process's store: same database, its own cache
        assert await elsewhere.revoke(record.id, now=2)
        now[0] += 4.9
        assert await cached.authenticate(plaintext) == record  # still within the documented bound
        now[0] += 0.2
        assert await cached.authenticate(plaintext) is None  # past it: read again, revoked

        record2, plaintext2 = await cached.create(name="b", is_admin=False, now=3)
        assert await cached.authenticate(plaintext2) == record2
        assert await cached.revoke(record2.id, now=4)
        assert await cached.authenticate(plaintext2) is None  # revoked here: forgotten at once


async def test_the_key_cache_never_keeps_an_unknown_key_and_stays_bounded() -> None:
    loads: list[str] = []

    async def load(digest: str) -> str | None:
        loads.append(digest)
        return None if digest.startswith("bad") else f"key-{digest}"

    cache: KeyCache[str] = KeyCache(60, max_entries=3)
    for _ in range(2):
        assert await cache.get("bad1", lambda: load("bad1")) is None
    assert loads == ["bad1", "bad1"]
    for d in ("a", "b", "c", "d"):
        assert await cache.get(d, lambda d=d: load(d)) == f"key-{d}"  # type: ignore[misc]
    assert await cache.get("a", lambda: load("a")) == "key-a"  # evicted (oldest): read again
    assert loads.count("a") == 2
    off: KeyCache[str] = KeyCache(0)
    await off.get("x", lambda: load("x"))
    await off.get("x", lambda: load("x"))
    assert loads.count("x") == 2


async def test_the_cache_never_answers_for_another_key(gateway: Gateway) -> None:
    alice, bob = await gateway.new_key("alice"), await gateway.new_key("bob")
    async with gateway.client(alice) as a, gateway.client(bob) as b:
        made = (await a.post("/v1/video/create", json={"model": "sora-2", "prompt": "mine"})).json()
        for _ in range(3):  # warm both keys' cache entries
            assert (await a.get("/v1/video/query", params={"id": made["id"]})).status_code == 200
            gone = await b.get("/v1/video/query", params={"id": made["id"]})
            assert gone.status_code == 404
        assert (await b.get("/v1/videos")).json()["data"] == []
        assert len((await a.get("/v1/videos")).json()["data"]) == 1


async def test_concurrent_creates_are_each_committed_once(gateway: Gateway, api_key: str) -> None:
    """200 creates at once (grouped on SQLite), 20 of them replays of one idempotency key."""
    async with gateway.client(api_key) as client:

        async def create(i: int) -> httpx.Response:
            headers = {"Idempotency-Key": "same"} if i % 10 == 0 else {}
            body = {"model": "sora-2", "prompt": "same" if i % 10 == 0 else f"clip {i}"}
            return await client.post("/v1/video/create", json=body, headers=headers)

        answers = await asyncio.gather(*(create(i) for i in range(200)))
    assert [r.status_code for r in answers] == [200] * 200
    replayed = {r.json()["id"] for i, r in enumerate(answers) if i % 10 == 0}
    assert len(replayed) == 1
    engine = gateway.runtime.engine
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(tasks))).scalar_one() == 181
        assert (await conn.execute(select(func.count()).select_from(task_events))).scalar_one() == 181


async def test_a_reused_idempotency_key_in_one_group_fails_only_that_create(
    make_settings: SettingsFactory,
) -> None:
    async with open_runtime(make_settings()) as runtime:
        owner = (await runtime.keys.create(name="a", is_admin=False, now=1))[0].id

        async def create(prompt: str, key: str | None, request_hash: str | None) -> object:
            try:
                return await runtime.tasks.create(
                    spec(prompt), owner=owner, dialect="openai", now=1, deadline_ms=60_000,
                    idempotency_key=key, request_hash=request_hash,
                )  # fmt: skip
            except Conflict as exc:
                return exc

        results = await asyncio.gather(
            create("one", "k", "h1"), create("two", "k", "h2"), create("three", None, None)
        )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(conflicts) == 1 and conflicts[0].code == "idempotency_key_reused"
    assert len({r.id for r in results if not isinstance(r, Conflict)}) == 2  # type: ignore[attr-defined]


async def test_a_create_is_on_disk_when_it_returns(make_settings: SettingsFactory, tmp_path: Path) -> None:
    """Grouped creates commit with synchronous=FULL before anyone's create returns; a second connection
    (another process) sees every returned task at once."""
    settings = make_settings()
    if not settings.is_sqlite:
        pytest.skip("SQLite's grouped creates")
    async with open_runtime(settings) as runtime:
        owner = (await runtime.keys.create(name="a", is_admin=False, now=1))[0].id
        path = settings.resolved_database_url.split("///", 1)[1]

        async def create_and_look(i: int) -> None:
            task = await runtime.tasks.create(
                spec(f"{i}"), owner=owner, dialect="openai", now=1, deadline_ms=1
            )
            with sqlite3.connect(path) as other:
                assert other.execute("SELECT count(*) FROM tasks WHERE id = ?", (task.id,)).fetchone() == (1,)

        await asyncio.gather(*(create_and_look(i) for i in range(30)))
        assert runtime.tasks._creates is not None
        mode = runtime.tasks._creates._connection().execute("PRAGMA synchronous").fetchone()
        assert mode == (2,)  # FULL


async def test_a_failed_group_fails_every_create_in_it(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    if not settings.is_sqlite:
        pytest.skip("SQLite's grouped creates")
    async with open_runtime(settings) as runtime:
        owner = (await runtime.keys.create(name="a", is_admin=False, now=1))[0].id
        writer = runtime.tasks._creates
        assert writer is not None
        # Another connection holds SQLite's write lock past a short busy timeout: the group's
        # BEGIN IMMEDIATE fails, and every create queued in it must fail, none half-saved.
        blocker = sqlite3.connect(settings.resolved_database_url.split("///", 1)[1], isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        writer._connection().execute("PRAGMA busy_timeout=50")
        try:
            results = await asyncio.gather(
                *(
                    runtime.tasks.create(spec(f"{i}"), owner=owner, dialect="openai", now=1, deadline_ms=1)
                    for i in range(5)
                ),
                return_exceptions=True,
            )
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
        async with runtime.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(tasks))).scalar_one() == 0
        writer._connection().execute("PRAGMA busy_timeout=30000")
        assert (await runtime.tasks.create(spec(), owner=owner, dialect="openai", now=1, deadline_ms=1)).id


async def test_writers_take_turns_and_a_nested_write_fails_fast(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    if not settings.is_sqlite:
        pytest.skip("the SQLite writer lock")
    engine = db.create_engine(settings.resolved_database_url)
    await db.upgrade(settings.resolved_database_url)
    try:
        with pytest.raises(RuntimeError, match="inside another"):
            async with db.write_transaction(engine), db.write_transaction(engine):
                pass
        lock = db.sqlite_writer_lock(engine)
        assert lock is not None
        holding, release = anyio.Event(), anyio.Event()

        async def first() -> None:
            async with db.write_transaction(engine) as conn:
                await conn.execute(update(tasks).values(progress=1))  # no rows: just a write
                holding.set()
                await release.wait()

        async def second() -> None:
            async with db.write_transaction(engine) as conn:
                await conn.execute(update(tasks).values(progress=2))

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await holding.wait()
            tg.start_soon(second)
            # The second writer waits on the lock, in this process, not in SQLite's busy handler.
            with anyio.fail_after(5):
                while lock.statistics().tasks_waiting == 0:
                    await anyio.sleep(0)
            release.set()
        assert not lock.locked()
    finally:
        await engine.dispose()
