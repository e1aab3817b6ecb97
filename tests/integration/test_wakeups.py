"""Wake-ups reach the worker: a new task is claimed at once, not at the next idle tick.

Every worker here idles for 60 s between looks (`idle_poll_seconds`), and every wait is bounded far below
that, so only a wake-up can make the worker claim in time. Each test first waits until the worker has
entered its idle wait (`Worker._idle`, watched below), so that no claim already under way can pick the
task up by chance.

- in one process (`vidgate serve` with its embedded worker): a create over HTTP wakes it (SQLite and
  PostgreSQL);
- across processes on PostgreSQL: a create made through another runtime (its own engine and
  connections, as another process has) NOTIFYs, and the worker's LISTEN connection wakes it; a lost
  LISTEN connection is made again, after which creates wake it again.

The two PostgreSQL tests fail on the code before worker/wakeups.py (no NOTIFY, no LISTEN): the task
waits for the 60 s tick.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
import pytest

from tests.helpers import SPEC, scripted_channel
from tests.integration.worker_support import QUICK
from vidgate.ids import parse_task_id
from vidgate.runtime import Runtime, open_runtime
from vidgate.worker.runner import Worker
from vidgate.worker.wakeups import APPLICATION_NAME, listen_for_wakeups, listener_conninfo

pytestmark = pytest.mark.anyio

IDLE = QUICK.model_copy(update={"idle_poll_seconds": 60})  # only a wake-up makes it look within a test
BOUND_S = 10  # far less than the idle tick (checked with jitter: 60 s * 0.8)


class IdleWatch:
    """Counts the worker's entries into its idle wait, and lets a test wait for the next one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries = 0
        self._changed = anyio.Event()
        original = Worker._idle
        watch = self

        async def idle(worker: Worker, *args: Any, **kwargs: Any) -> None:
            watch.entries += 1
            watch._changed.set()
            watch._changed = anyio.Event()
            await original(worker, *args, **kwargs)

        monkeypatch.setattr(Worker, "_idle", idle)

    async def until_idle(self, after: int = 0) -> None:
        """Return once the worker has entered its idle wait more than `after` times."""
        with anyio.fail_after(BOUND_S):
            while self.entries <= after:
                await self._changed.wait()


async def submitted(runtime: Runtime, task_id: str) -> None:
    """Wait (bounded) until the task's job is made upstream."""
    with anyio.fail_after(BOUND_S):
        while (await runtime.tasks.get(task_id)).upstream_id is None:
            await anyio.sleep(0.02)


@asynccontextmanager
async def another_process(settings: Any) -> AsyncIterator[Runtime]:
    """A runtime of its own (engine, pools, no worker): what another API process has."""
    async with open_runtime(settings) as runtime:
        yield runtime


async def create_in(runtime: Runtime) -> str:
    key = (await runtime.keys.create(name="other", is_admin=False, now=runtime.clock.now_ms()))[0]
    task = await runtime.tasks.create(
        SPEC, owner=key.id, dialect="unified", now=runtime.clock.now_ms(), deadline_ms=3_600_000
    )
    return task.id


async def test_a_create_over_http_wakes_the_embedded_worker(start_gateway, tmp_path, monkeypatch) -> None:
    watch = IdleWatch(monkeypatch)
    async with start_gateway(channels=[scripted_channel(tmp_path / "up")], worker=IDLE) as gw:
        await watch.until_idle()
        async with gw.client(await gw.new_key()) as api:
            response = await api.post("/v1/video/create", json={"model": "sora-2", "prompt": "a fox"})
            assert response.status_code == 200, response.text
        task_id = parse_task_id(response.json()["id"])
        assert task_id is not None
        await submitted(gw.runtime, task_id)


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_notify_from_another_process_wakes_a_postgresql_worker(
    start_gateway, tmp_path, monkeypatch
) -> None:
    watch = IdleWatch(monkeypatch)
    async with start_gateway(channels=[scripted_channel(tmp_path / "up")], worker=IDLE) as gw:
        async with another_process(gw.settings) as other:
            await watch.until_idle()
            task_id = await create_in(other)  # nothing in the worker's process knows of it
            await submitted(gw.runtime, task_id)


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_lost_listen_connection_is_made_again(start_gateway, tmp_path, monkeypatch) -> None:
    watch = IdleWatch(monkeypatch)
    async with start_gateway(channels=[scripted_channel(tmp_path / "up")], worker=IDLE) as gw:
        conninfo = listener_conninfo(gw.settings.resolved_database_url)
        mine = "application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()"
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:

            async def listeners() -> list[int]:
                cur = await admin.execute(
                    f"SELECT pid FROM pg_stat_activity WHERE {mine}", [APPLICATION_NAME]
                )
                return [row[0] for row in await cur.fetchall()]

            [first] = await listeners()
            await admin.execute("SELECT pg_terminate_backend(%s)", [first])
            with anyio.fail_after(BOUND_S):  # the listener reconnects (after 0.5 s)
                while (pids := await listeners()) in ([], [first]):
                    await anyio.sleep(0.05)
            assert first not in pids
        async with another_process(gw.settings) as other:
            await watch.until_idle()
            # The new connection may still be on its way to LISTEN: then the wake-up it gives once it
            # listens finds the task instead of the NOTIFY. Either way, no idle tick is waited for.
            task_id = await create_in(other)
            await submitted(gw.runtime, task_id)


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_listener_stopped_while_it_starts_to_listen_closes_its_connection(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that stops while its listener's LISTEN is under way (as after a reconnection) cancels it
    there: the connection must still be closed, not left to the garbage collector (before, the exit of
    `async with conn` had its rollback cancelled and skipped the close)."""
    listening = anyio.Event()
    execute = psycopg.AsyncConnection.execute

    async def slow_listen(conn: psycopg.AsyncConnection, query: Any, *args: Any, **kwargs: Any) -> Any:
        if str(query).startswith("LISTEN"):
            listening.set()
            await anyio.sleep_forever()
        return await execute(conn, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", slow_listen)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listen_for_wakeups, db_url, lambda: None)
        with anyio.fail_after(BOUND_S):
            await listening.wait()
        tg.cancel_scope.cancel()  # as a stopping worker cancels it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], "its connection was left open"
    async with await psycopg.AsyncConnection.connect(listener_conninfo(db_url), autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()"
            " AND datname = current_database()",
            [APPLICATION_NAME],
        )
        assert (await cur.fetchone()) == (0,)
