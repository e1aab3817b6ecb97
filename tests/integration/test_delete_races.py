"""A client's delete racing the worker: it succeeds when the task completes between its read and its
cancel, and it never overwrites a change it did not see.

Each of these failed on the code before its fix (checked against commit b76932a).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from tests.helpers import new_task, scripted_channel
from vidgate.store.tables import tasks

pytestmark = pytest.mark.anyio


def complete_right_after_the_first_read(monkeypatch, gw, ulid: str) -> None:
    """Play a worker that completes the task just after the code under test first reads it."""
    real_get = gw.runtime.tasks.get
    raced = []

    async def get_then_complete(*args, **kwargs):
        snapshot = await real_get(*args, **kwargs)
        if not raced:
            raced.append(True)
            async with gw.runtime.engine.begin() as conn:
                await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == ulid)
                    .values(status="completed", step="done", version=tasks.c.version + 1)
                )
        return snapshot

    monkeypatch.setattr(gw.runtime.tasks, "get", get_then_complete)


async def test_delete_succeeds_when_the_task_completes_between_its_read_and_its_cancel(
    start_gateway, tmp_path, monkeypatch
) -> None:
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        async with gw.client(await gw.new_key()) as client:
            created = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "p"})
            task_id = created.json()["id"]
            complete_right_after_the_first_read(monkeypatch, gw, task_id.rsplit("_", 1)[-1])
            response = await client.delete(f"/v1/videos/{task_id}")
            monkeypatch.undo()
            assert response.status_code == 200, response.text
            assert (await client.get(f"/v1/videos/{task_id}")).status_code == 404


async def test_a_delete_never_overwrites_a_change_it_did_not_see(
    start_gateway, tmp_path, monkeypatch
) -> None:
    """The soft delete used to write the status it computed from an earlier read, without compare-and-set
    or an event: a task that completed in between was flipped to `cancelled`."""
    async with start_gateway(run_worker=False, channels=[scripted_channel(tmp_path / "up")]) as gw:
        task = await new_task(gw)
        complete_right_after_the_first_read(monkeypatch, gw, task.id)
        await gw.runtime.tasks.soft_delete(task.id, owner=task.owner, now=gw.runtime.clock.now_ms())
        monkeypatch.undo()
        async with gw.runtime.engine.connect() as conn:
            row = (await conn.execute(select(tasks).where(tasks.c.id == task.id))).mappings().one()
        events = await gw.runtime.tasks.events(task.id)
    assert row["status"] == "completed" and row["deleted_at"] is not None
    assert not [e for e in events if e.to_status == "cancelled"]
