"""The task store as a queue, on SQLite and PostgreSQL: claims, leases, fencing, idempotency, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from vidgate.clock import ManualClock
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import Step, TaskStatus, WatermarkMode
from vidgate.errors import Conflict
from vidgate.store import db
from vidgate.store.keys import KeyStore
from vidgate.store.tasks import TaskStore

pytestmark = pytest.mark.anyio
T0 = 1_760_000_000_000
LEASE = 10_000
SPEC = VideoSpec("sora-2", "p", (), 720, 1280, 10, WatermarkMode.PREFER_CLEAN)


CLOCK = ManualClock(T0)  # the queue's clock in these tests; each test sets it with at()


def at(ms: int) -> None:
    CLOCK.advance((ms - CLOCK.now_ms()) / 1000)


async def claim_at(store: TaskStore, ms: int, *, worker: str, limit: int) -> list:
    at(ms)
    return await store.claim_due(worker=worker, limit=limit, lease_ms=LEASE)


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[tuple[TaskStore, str, str]]:
    await db.upgrade(db_url)
    engine = db.create_engine(db_url)
    keys = KeyStore(engine)
    owner = (await keys.create(name="a", is_admin=False, now=T0))[0].id
    other = (await keys.create(name="b", is_admin=False, now=T0))[0].id
    at(T0)
    yield TaskStore(engine, clock=CLOCK), owner, other
    await engine.dispose()


async def test_create_then_read_only_by_its_owner(stores) -> None:
    store, owner, other = stores
    task = await store.create(SPEC, owner=owner, dialect="unified", now=T0, deadline_ms=3_600_000)
    # With no images there is nothing to ingest: the first step is the submit.
    assert task.status is TaskStatus.PENDING and task.step is Step.SUBMIT and task.inputs == []
    assert task.deadline_at == T0 + 3_600_000 and task.status_update_time == T0
    assert (await store.get(task.id, owner=owner)) == task
    assert await store.get(task.id, owner=other) is None
    assert [e.kind for e in await store.events(task.id)] == ["created"]


async def test_idempotency_key_returns_the_first_task_or_conflicts(stores) -> None:
    store, owner, other = stores
    kw = dict(owner=owner, dialect="unified", now=T0, deadline_ms=1000, idempotency_key="k1")
    first = await store.create(SPEC, request_hash="h1", **kw)
    again = await store.create(SPEC, request_hash="h1", **kw)
    assert again.id == first.id
    with pytest.raises(Conflict):
        await store.create(SPEC, request_hash="h2", **kw)
    # Keys are per owner: another key may use the same Idempotency-Key.
    theirs = await store.create(SPEC, request_hash="h1", **{**kw, "owner": other})
    assert theirs.id != first.id


async def test_concurrent_idempotent_creates_make_one_task(stores) -> None:
    store, owner, _ = stores
    ids: list[str] = []

    async def create() -> None:
        task = await store.create(
            SPEC,
            owner=owner,
            dialect="unified",
            now=T0,
            deadline_ms=1000,
            idempotency_key="same",
            request_hash="h",
        )
        ids.append(task.id)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(create)
    assert len(set(ids)) == 1


async def test_claims_are_exclusive_until_the_lease_expires(stores) -> None:
    store, owner, _ = stores
    task = await store.create(SPEC, owner=owner, dialect="unified", now=T0, deadline_ms=10**9)
    [a] = await claim_at(store, T0, worker="A", limit=5)
    assert a.task.id == task.id and a.task.lease_owner == "A" and a.version == task.version + 1
    assert await claim_at(store, T0 + LEASE - 1, worker="B", limit=5) == []
    # A stalls past its lease: B takes over at a new version and token, and A's late writes are refused.
    [b] = await claim_at(store, T0 + LEASE + 1, worker="B", limit=5)
    assert b.version == a.version + 1 and b.token != a.token
    assert await store.finish_step(a, now=T0 + LEASE + 2, next_step=Step.SUBMIT) is None
    assert await store.heartbeat(a, lease_ms=LEASE) is None
    assert not await store.release(a)
    done = await store.finish_step(b, now=T0 + LEASE + 3, next_step=Step.SUBMIT)
    assert done is not None and done.step is Step.SUBMIT and done.lease_owner is None


async def test_not_due_and_finished_tasks_are_not_claimed(stores) -> None:
    store, owner, _ = stores
    task = await store.create(SPEC, owner=owner, dialect="unified", now=T0, deadline_ms=10**9)
    [c] = await claim_at(store, T0, worker="A", limit=1)
    await store.finish_step(c, now=T0, next_step=Step.SUBMIT, delay_ms=5000)
    assert await claim_at(store, T0 + 4999, worker="A", limit=1) == []
    [c] = await claim_at(store, T0 + 5000, worker="A", limit=1)
    await store.finish_step(
        c,
        now=T0 + 5000,
        next_step=Step.DONE,
        status=TaskStatus.FAILED,
        changes={"error_code": "x"},
    )
    assert await claim_at(store, T0 + 10**8, worker="A", limit=1) == []
    assert (await store.get(task.id)).completed_at == T0 + 5000


async def test_due_tasks_are_claimed_oldest_first_and_started_ones_before_new_ingests(stores) -> None:
    store, owner, _ = stores
    with_image = SPEC.__class__(**{**SPEC.__dict__, "images": ("https://example.com/a.png",)})
    new_ingest = await store.create(with_image, owner=owner, dialect="unified", now=T0, deadline_ms=10**9)
    first, second, third = [
        await store.create(SPEC, owner=owner, dialect="unified", now=T0 + n, deadline_ms=10**9)
        for n in (1, 2, 3)
    ]
    assert new_ingest.step is Step.INGEST and first.step is Step.SUBMIT
    # `first` moves on a step: its next step falls due later than the others' first steps did, and
    # still goes ahead of them, because it is the oldest task that is under way.
    [c] = await store.claim_due(worker="A", limit=1, lease_ms=LEASE, skip=[Step.INGEST])
    assert c.task.id == first.id
    await store.finish_step(c, now=T0 + 100, next_step=Step.POLL)
    claims = await claim_at(store, T0 + 200, worker="A", limit=4)
    assert [x.task.id for x in claims] == [first.id, second.id, third.id, new_ingest.id]


async def test_progress_never_goes_down_whatever_writes_it(stores) -> None:
    store, owner, _ = stores
    task = await store.create(SPEC, owner=owner, dialect="unified", now=T0, deadline_ms=10**9)
    [c] = await claim_at(store, T0, worker="A", limit=1)
    c = await store.advance(c, now=T0, changes={"progress": 19})
    assert c is not None and c.task.progress == 19
    # A late heartbeat carrying an older reading, a step that counts again from zero, a re-poll.
    assert await store.heartbeat(c, lease_ms=LEASE, progress=5) is not None
    assert (await store.get(task.id)).progress == 19
    c = await store.advance(c, now=T0, changes={"progress": 0})
    assert c is not None and c.task.progress == 19
    assert await store.repoll_later(c, delay_ms=0, changes={"progress": 3})
    assert (await store.get(task.id)).progress == 19
    [c] = await claim_at(store, T0 + 1, worker="A", limit=1)
    done = await store.finish_step(c, now=T0 + 1, next_step=Step.POLL, changes={"progress": 40})
    assert done is not None and done.progress == 40


async def test_status_changes_are_compare_and_set_with_an_event_each(stores) -> None:
    store, owner, _ = stores
    task = await store.create(SPEC, owner=owner, dialect="unified", now=T0, deadline_ms=10**9)
    [c] = await claim_at(store, T0, worker="A", limit=1)
    advanced = await store.advance(c, now=T0 + 1, status=TaskStatus.PROCESSING, changes={"channel": "x"})
    assert advanced is not None and advanced.version == c.version + 1
    assert await store.advance(c, now=T0 + 2, changes={"channel": "y"}) is None  # stale version
    await store.finish_step(advanced, now=T0 + 3, next_step=Step.DONE, status=TaskStatus.COMPLETED)
    events = [(e.kind, e.from_status, e.to_status) for e in await store.events(task.id)]
    assert events == [
        ("created", None, "pending"),
        ("status", "pending", "processing"),
        ("status", "processing", "completed"),
    ]
    final = await store.get(task.id)
    assert final.status_update_time == T0 + 3 and final.channel == "x"


async def test_cancel_fences_the_worker_holding_the_lease(stores) -> None:
    store, owner, other = stores
    task = await store.create(SPEC, owner=owner, dialect="unified", now=T0, deadline_ms=10**9)
    [c] = await claim_at(store, T0, worker="A", limit=1)
    assert await store.cancel(task.id, owner=other, now=T0 + 1) is None
    cancelled = await store.cancel(task.id, owner=owner, now=T0 + 1)
    assert cancelled.status is TaskStatus.CANCELLED and cancelled.error.code == "cancelled"
    # The lease still holds (a submit in flight may finish), and the heartbeat says the client stopped it;
    # the step's outcome loses to the cancel.
    check = await store.heartbeat(c, lease_ms=LEASE)
    assert check is not None and check.stopped_by_client
    assert await store.finish_step(c, now=T0 + 2, next_step=Step.SUBMIT) is None
    with pytest.raises(Conflict):
        await store.cancel(task.id, owner=owner, now=T0 + 3)


async def test_concurrent_claimers_never_share_a_task(stores) -> None:
    store, owner, _ = stores
    for _ in range(40):
        await store.create(SPEC, owner=owner, dialect="unified", now=T0, deadline_ms=10**9)
    seen: list[str] = []

    async def claimer(name: str) -> None:
        while True:
            claims = await store.claim_due(worker=name, limit=3, lease_ms=LEASE)
            if not claims:
                return
            seen.extend(c.task.id for c in claims)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(claimer, f"w{i}")
    assert len(seen) == 40 and len(set(seen)) == 40


async def test_list_pages_by_creation_order(stores) -> None:
    store, owner, other = stores
    ids = [
        (await store.create(SPEC, owner=owner, dialect="openai", now=T0 + i, deadline_ms=1000)).id
        for i in range(5)
    ]
    await store.create(SPEC, owner=other, dialect="openai", now=T0, deadline_ms=1000)
    page, more = await store.list_page(owner=owner, after=None, limit=2, descending=False)
    assert [t.id for t in page] == ids[:2] and more
    page, more = await store.list_page(owner=owner, after=ids[1], limit=10, descending=False)
    assert [t.id for t in page] == ids[2:] and not more
    page, more = await store.list_page(owner=owner, after=ids[3], limit=10, descending=True)
    assert [t.id for t in page] == ids[:3][::-1] and not more
