"""The TaskStore contract: one suite, run against SQLite and PostgreSQL, through the store's public API.

Whatever the API and the worker rely on is asserted here for every way the store is built and every
path a create takes (store/tasks/, docs/architecture.md "The task table is the queue"):

- create paths (`path`): "grouped" is the store as a process builds it (`open_runtime`): creates go in
  groups, through SQLite's create writer or PostgreSQL's grouped INSERT; "capped" is the same store
  with the key's `max_active_tasks` set, which takes a transaction of its own; "unwired" is a store
  built from the engine alone (SQLite: a transaction of its own per create, without the cap).
- read paths (`reads`): "fast" (store/fast_reads.py, the hot paths' one driver call: the runtime's
  store) and "sqlalchemy" (a store without fast reads).
- the queue and the worker's fenced writes, on the store as the worker builds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import anyio
import pytest

from tests.conftest import SettingsFactory
from tests.ledger_checks import assert_ledger_consistent
from vidgate.clock import ManualClock
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import Step, Task, TaskStatus, WatermarkMode
from vidgate.errors import Conflict, InsufficientQuota, RateLimited
from vidgate.runtime import Runtime, open_runtime
from vidgate.store import ledger
from vidgate.store.task_rows import Claim
from vidgate.store.tasks import ACTIVE_CAP_RETRY_AFTER_S, TaskStore

pytestmark = pytest.mark.anyio
T0 = 1_760_000_000_000
LEASE = 10_000
DEADLINE = 3_600_000
HOLD = 700_000
CAP = 100  # the "capped" path's max_active_tasks: far above what any test here creates
SPEC = VideoSpec("sora-2", "p", (), 720, 1280, 10, WatermarkMode.PREFER_CLEAN)
WITH_IMAGE = replace(SPEC, images=("https://example.com/a.png",))


@dataclass
class World:
    """One database, a store built one way, two keys, and the queue's clock (moved only by `at`)."""

    runtime: Runtime
    store: TaskStore
    clock: ManualClock
    owner: str
    other: str
    cap: int | None = None  # max_active_tasks on every create (the "capped" path)

    def at(self, ms: int) -> None:
        self.clock.advance((ms - self.clock.now_ms()) / 1000)

    async def create(self, spec: VideoSpec = SPEC, *, owner: str | None = None, **kw: Any) -> Task:
        kw.setdefault("now", self.clock.now_ms())
        kw.setdefault("deadline_ms", DEADLINE)
        kw.setdefault("max_active_tasks", self.cap)
        return await self.store.create(spec, owner=owner or self.owner, dialect="unified", **kw)

    async def claim(self, ms: int | None = None, *, worker: str = "A", limit: int = 1) -> list[Claim]:
        if ms is not None:
            self.at(ms)
        return await self.store.claim_due(worker=worker, limit=limit, lease_ms=LEASE)

    async def paying_key(self, balance: int) -> str:
        key, _ = await self.runtime.keys.create(name="payer", is_admin=False, now=T0, balance=balance)
        return key.id

    async def account(self, key_id: str) -> tuple[int | None, int]:
        key = await self.runtime.keys.get(key_id)
        assert key is not None
        return key.balance, key.held

    async def entries(self, task_id: str) -> list[tuple[str, int]]:
        async with self.runtime.engine.connect() as conn:
            return [(e.kind, e.amount) for e in await ledger.task_entries(conn, task_id)]


@pytest.fixture
async def runtime(make_settings: SettingsFactory) -> AsyncIterator[tuple[Runtime, ManualClock]]:
    clock = ManualClock(T0)
    async with open_runtime(make_settings(), clock=clock) as rt:
        yield rt, clock


async def world_of(runtime: tuple[Runtime, ManualClock], *, wired: bool, cap: int | None = None) -> World:
    """`wired`: the runtime's store (fast reads, grouped creates), else one built from the engine alone."""
    rt, clock = runtime
    store = rt.tasks if wired else TaskStore(rt.engine, clock=clock)
    owner = (await rt.keys.create(name="a", is_admin=False, now=T0))[0].id
    other = (await rt.keys.create(name="b", is_admin=False, now=T0))[0].id
    return World(rt, store, clock, owner, other, cap)


def assert_wiring(world: World, *, grouped: bool, fast_reads: bool) -> None:
    """The one look inside: which path the store really takes, so that no test here passes on another
    path than it names (a store that lost its wiring would still answer every call)."""
    is_pg = world.runtime.engine.dialect.name == "postgresql"
    assert (world.store._creates is not None or world.store._pg_groups is not None) == (grouped or is_pg)
    assert (world.store._reads is not None) == fast_reads


@pytest.fixture(params=["grouped", "capped", "unwired"])
async def path(request: pytest.FixtureRequest, runtime: tuple[Runtime, ManualClock]) -> World:
    """The store and the create path under test (see the module docstring)."""
    wired = request.param != "unwired"
    world = await world_of(runtime, wired=wired, cap=CAP if request.param == "capped" else None)
    assert_wiring(world, grouped=wired, fast_reads=wired)
    return world


@pytest.fixture(params=["fast", "sqlalchemy"])
async def reads(request: pytest.FixtureRequest, runtime: tuple[Runtime, ManualClock]) -> World:
    """The store with the read path under test (see the module docstring)."""
    wired = request.param == "fast"
    world = await world_of(runtime, wired=wired)
    assert_wiring(world, grouped=wired, fast_reads=wired)
    return world


@pytest.fixture
async def worker(runtime: tuple[Runtime, ManualClock]) -> World:
    """The store as the worker's process builds it."""
    return await world_of(runtime, wired=True)


# Creates: every path ----------------------------------------------------------------------------


async def test_a_create_is_saved_pending_with_its_event_and_read_only_by_its_owner(path: World) -> None:
    task = await path.create(now=T0 + 5)
    # With no images there is nothing to ingest: the first step is the submit.
    assert task.status is TaskStatus.PENDING and task.step is Step.SUBMIT and task.inputs == []
    assert task.created_at == task.status_update_time == T0 + 5 and task.version == 0
    # Due at once and ending by its deadline, both on the queue's clock (not the caller's `now`).
    assert task.next_run_at == T0 and task.deadline_at == T0 + DEADLINE
    assert task.hold_amount is None and task.lease_owner is None
    assert (await path.store.get(task.id, owner=path.owner)) == task
    assert await path.store.get(task.id, owner=path.other) is None
    assert [(e.kind, e.to_status, e.step) for e in await path.store.events(task.id)] == [
        ("created", "pending", "submit")
    ]
    ingest = await path.create(WITH_IMAGE)
    assert ingest.step is Step.INGEST and ingest.inputs is None and ingest.images == WITH_IMAGE.images


async def test_a_priced_create_holds_its_price_in_the_same_transaction(path: World) -> None:
    payer = await path.paying_key(3 * HOLD)
    task = await path.create(owner=payer, hold=HOLD)
    assert task.hold_amount == HOLD
    assert await path.account(payer) == (3 * HOLD, HOLD)
    assert await path.entries(task.id) == [("hold", HOLD)]
    await assert_ledger_consistent(path.runtime.engine)


async def test_a_replay_with_the_same_key_and_body_answers_the_first_task_and_holds_once(path: World) -> None:
    payer = await path.paying_key(HOLD)  # enough for one hold: a replay must not need a second
    kw: dict[str, Any] = {"owner": payer, "hold": HOLD, "idempotency_key": "k1", "request_hash": "h1"}
    first = await path.create(**kw)
    again = await path.create(**{**kw, "now": T0 + 1000})
    assert again == first
    assert await path.account(payer) == (HOLD, HOLD)
    assert await path.entries(first.id) == [("hold", HOLD)]
    page, _ = await path.store.list_page(owner=payer, after=None, limit=10, descending=False)
    assert [t.id for t in page] == [first.id]


async def test_the_same_key_with_another_body_is_a_conflict(path: World) -> None:
    payer = await path.paying_key(5 * HOLD)
    kw: dict[str, Any] = {"owner": payer, "hold": HOLD, "idempotency_key": "k1"}
    first = await path.create(request_hash="h1", **kw)
    with pytest.raises(Conflict) as refused:
        await path.create(request_hash="h2", **kw)
    assert refused.value.code == "idempotency_key_reused"
    assert await path.account(payer) == (5 * HOLD, HOLD)  # nothing held for the refused create
    # Keys are per owner: another key may use the same Idempotency-Key.
    theirs = await path.create(owner=path.other, request_hash="h2", idempotency_key="k1")
    assert theirs.id != first.id


async def test_a_key_that_cannot_cover_the_hold_is_refused_and_nothing_is_saved(path: World) -> None:
    payer = await path.paying_key(HOLD - 1)
    with pytest.raises(InsufficientQuota):
        await path.create(owner=payer, hold=HOLD)
    with pytest.raises(InsufficientQuota):  # with an idempotency key no task has taken yet: the same
        await path.create(owner=payer, hold=HOLD, idempotency_key="k", request_hash="h")
    assert await path.store.list_page(owner=payer, after=None, limit=10, descending=False) == ([], False)
    assert await path.account(payer) == (HOLD - 1, 0)
    await assert_ledger_consistent(path.runtime.engine)


async def test_identical_prompts_make_a_task_each_unless_an_idempotency_key_joins_them(path: World) -> None:
    """Concurrent creates (in groups, on the grouped paths) with the very same prompt: without a key each
    is a task of its own; with one key and one body, one task, held once, whoever won the race: a loser
    whose hold was made gives it back, and one refused for the money the winner held is answered too."""
    rich, poor = await path.paying_key(20 * HOLD), await path.paying_key(HOLD)

    async def create(owner: str, key: str | None) -> Task:
        return await path.create(owner=owner, hold=HOLD, idempotency_key=key, request_hash=key and "h")

    plain = await asyncio.gather(*(create(rich, None) for _ in range(5)))
    assert len({t.id for t in plain}) == 5 and {t.prompt for t in plain} == {SPEC.prompt}
    for payer in (rich, poor):
        keyed = await asyncio.gather(*(create(payer, "same") for _ in range(8)))
        assert len({t.id for t in keyed}) == 1
    assert await path.account(rich) == (20 * HOLD, 6 * HOLD)  # five tasks and one: six holds, no more
    assert await path.account(poor) == (HOLD, HOLD)
    moves = await assert_ledger_consistent(path.runtime.engine)
    assert sorted(m["hold"] for m in moves.values()) == [HOLD] * 7


async def test_concurrent_priced_creates_never_overdraw_a_key(path: World) -> None:
    payer = await path.paying_key(3 * HOLD)
    outcomes = await asyncio.gather(
        *(path.create(owner=payer, hold=HOLD) for _ in range(7)), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, Task)]
    assert len(made) == 3
    assert all(isinstance(o, InsufficientQuota) for o in outcomes if not isinstance(o, Task))
    assert await path.account(payer) == (3 * HOLD, 3 * HOLD)
    await assert_ledger_consistent(path.runtime.engine)


async def test_the_active_task_cap_refuses_a_create_past_it_but_answers_a_replay(
    runtime: tuple[Runtime, ManualClock],
) -> None:
    world = await world_of(runtime, wired=True, cap=2)
    first = await world.create(idempotency_key="once", request_hash="h")
    await world.create()
    with pytest.raises(RateLimited) as refused:
        await world.create()
    assert refused.value.code == "too_many_active_tasks"
    assert refused.value.headers == {"retry-after": str(ACTIVE_CAP_RETRY_AFTER_S)}
    assert (await world.create(idempotency_key="once", request_hash="h")).id == first.id  # a replay
    with pytest.raises(RateLimited):
        await world.create(idempotency_key="twice", request_hash="h")
    await world.create(owner=world.other)  # the cap is per key
    await world.store.cancel(first.id, owner=world.owner, now=T0)  # an ended task frees its place
    await world.create()


# Reads: both paths ------------------------------------------------------------------------------


async def test_get_reads_a_live_task_by_id_and_owner(reads: World) -> None:
    task = await reads.create()
    assert await reads.store.get(task.id, owner=reads.owner) == task
    assert await reads.store.get(task.id) == task  # the worker's read: any owner
    assert await reads.store.get(task.id, owner=reads.other) is None  # another key's task: nothing
    assert await reads.store.get("0" * 26, owner=reads.owner) is None
    before = await reads.store.soft_delete(task.id, owner=reads.owner, now=T0 + 1)
    assert before == task
    assert await reads.store.get(task.id, owner=reads.owner) is None
    assert await reads.store.get(task.id) is None
    deleted = await reads.store.get(task.id, include_deleted=True)
    assert deleted is not None and deleted.deleted_at == T0 + 1 and deleted.status is TaskStatus.CANCELLED
    assert await reads.store.get(task.id, owner=reads.other, include_deleted=True) is None


async def test_list_pages_by_creation_order(reads: World) -> None:
    ids = [(await reads.create(now=T0 + i)).id for i in range(5)]
    await reads.create(owner=reads.other)
    page, more = await reads.store.list_page(owner=reads.owner, after=None, limit=2, descending=False)
    assert [t.id for t in page] == ids[:2] and more
    page, more = await reads.store.list_page(owner=reads.owner, after=ids[1], limit=10, descending=False)
    assert [t.id for t in page] == ids[2:] and not more
    page, more = await reads.store.list_page(owner=reads.owner, after=ids[3], limit=10, descending=True)
    assert [t.id for t in page] == ids[:3][::-1] and not more
    page, more = await reads.store.list_page(owner=reads.other, after=None, limit=10, descending=True)
    assert len(page) == 1 and not more


async def test_a_page_shows_what_a_get_shows_and_filters_by_status(reads: World) -> None:
    kept, cancelled, deleted = [await reads.create(now=T0 + i) for i in range(3)]
    await reads.store.cancel(cancelled.id, owner=reads.owner, now=T0 + 10)
    await reads.store.soft_delete(deleted.id, owner=reads.owner, now=T0 + 11)
    page, more = await reads.store.list_page(owner=reads.owner, after=None, limit=10, descending=False)
    assert [t.id for t in page] == [kept.id, cancelled.id] and not more  # a deleted task is never listed
    for summary in page:
        task = await reads.store.get(summary.id)
        assert task is not None
        assert (summary.prompt, summary.status, summary.progress, summary.created_at, summary.completed_at,
                summary.error) == (task.prompt, task.status, task.progress, task.created_at,
                                   task.completed_at, task.error)  # fmt: skip
    assert page[1].status is TaskStatus.CANCELLED and page[1].error is not None
    only = await reads.store.list_page(
        owner=reads.owner, after=None, limit=10, descending=True, status=TaskStatus.PENDING
    )
    assert [t.id for t in only[0]] == [kept.id]


# The queue and the worker's fenced writes -------------------------------------------------------


async def test_claim_advance_finish_step_with_a_compare_and_set_and_an_event_each(worker: World) -> None:
    payer = await worker.paying_key(HOLD)
    task = await worker.create(owner=payer, hold=HOLD)
    [c] = await worker.claim(T0)
    assert c.task.id == task.id and c.task.lease_owner == "A" and c.version == task.version + 1
    advanced = await worker.store.admit(
        c,
        channel="relay",
        max_concurrent=None,
        now=T0 + 1,
        status=TaskStatus.PROCESSING,
        known_healthy=True,
        charge=HOLD // 4,
    )
    assert isinstance(advanced, Claim) and advanced.version == c.version + 1
    assert advanced.task.charge_amount == HOLD // 4 and advanced.task.submit_intent_at == T0
    assert await worker.store.advance(c, now=T0 + 2, changes={"channel": "y"}) is None  # stale version
    polled = await worker.store.advance(advanced, now=T0 + 2, changes={"upstream_id": "job-1"})
    assert polled is not None and polled.task.upstream_id == "job-1"
    done = await worker.store.finish_step(
        polled, now=T0 + 3, next_step=Step.DONE, status=TaskStatus.COMPLETED
    )
    assert done is not None and done.status is TaskStatus.COMPLETED and done.lease_owner is None
    events = [(e.kind, e.from_status, e.to_status) for e in await worker.store.events(task.id)]
    assert events == [
        ("created", None, "pending"),
        ("status", "pending", "processing"),
        ("status", "processing", "completed"),
    ]
    final = await worker.store.get(task.id)
    assert final is not None and final.status_update_time == T0 + 3 and final.completed_at == T0 + 3
    # The money moved in the compare-and-set that ended the task: its price captured, the rest released.
    assert await worker.entries(task.id) == [
        ("hold", HOLD),
        ("capture", HOLD // 4),
        ("release", 3 * HOLD // 4),
    ]
    assert await worker.account(payer) == (HOLD - HOLD // 4, 0)
    await assert_ledger_consistent(worker.runtime.engine)


async def test_claims_are_exclusive_until_the_lease_expires_and_a_lost_fence_writes_nothing(
    worker: World,
) -> None:
    task = await worker.create()
    [a] = await worker.claim(T0, worker="A", limit=5)
    assert await worker.claim(T0 + LEASE - 1, worker="B", limit=5) == []
    # A stalls past its lease: B takes over at a new version and token, and A's late writes are refused.
    [b] = await worker.claim(T0 + LEASE + 1, worker="B", limit=5)
    assert b.version == a.version + 1 and b.token != a.token
    assert await worker.store.finish_step(a, now=T0 + LEASE + 2, next_step=Step.SUBMIT) is None
    assert await worker.store.advance(a, now=T0 + LEASE + 2, status=TaskStatus.PROCESSING) is None
    assert not await worker.store.repoll_later(a, delay_ms=0, changes={"progress": 50})
    assert await worker.store.heartbeat_many([(a, None)], lease_ms=LEASE) == {}
    assert not await worker.store.release(a)
    assert await worker.store.save_upstream_job(a, now=T0, upstream_id="stale", memo={}) is None
    assert await worker.store.live_claims({(task.id, a.token), (task.id, b.token)}) == {(task.id, b.token)}
    unchanged = await worker.store.get(task.id)
    assert unchanged is not None and unchanged.version == b.version and unchanged.progress == 0
    assert [e.kind for e in await worker.store.events(task.id)] == ["created"]  # no event for a lost write
    done = await worker.store.finish_step(b, now=T0 + LEASE + 3, next_step=Step.POLL)
    assert done is not None and done.step is Step.POLL and done.lease_owner is None


async def test_not_due_and_finished_tasks_are_not_claimed(worker: World) -> None:
    task = await worker.create()
    [c] = await worker.claim(T0)
    await worker.store.finish_step(c, now=T0, next_step=Step.SUBMIT, delay_ms=5000)
    assert await worker.claim(T0 + 4999) == []
    [c] = await worker.claim(T0 + 5000)
    await worker.store.finish_step(
        c, now=T0 + 5000, next_step=Step.DONE, status=TaskStatus.FAILED, changes={"error_code": "x"}
    )
    assert await worker.claim(T0 + 10**8) == []
    failed = await worker.store.get(task.id)
    assert failed is not None and failed.completed_at == T0 + 5000


async def test_due_tasks_are_claimed_oldest_first_and_started_ones_before_new_ingests(worker: World) -> None:
    new_ingest = await worker.create(WITH_IMAGE, now=T0)
    first, second, third = [await worker.create(now=T0 + n) for n in (1, 2, 3)]
    assert new_ingest.step is Step.INGEST and first.step is Step.SUBMIT
    # `first` moves on a step: its next step falls due later than the others' first steps did, and
    # still goes ahead of them, because it is the oldest task that is under way.
    [c] = await worker.store.claim_due(worker="A", limit=1, lease_ms=LEASE, skip=[Step.INGEST])
    assert c.task.id == first.id
    await worker.store.finish_step(c, now=T0 + 100, next_step=Step.POLL)
    claims = await worker.claim(T0 + 200, limit=4)
    assert [x.task.id for x in claims] == [first.id, second.id, third.id, new_ingest.id]


async def test_progress_never_goes_down_whatever_writes_it(worker: World) -> None:
    task = await worker.create()

    async def progress() -> int:
        now = await worker.store.get(task.id)
        assert now is not None
        return now.progress

    [claimed] = await worker.claim(T0)
    c = await worker.store.advance(claimed, now=T0, changes={"progress": 19})
    assert c is not None and c.task.progress == 19
    # A late heartbeat carrying an older reading, a step that counts again from zero, a re-poll.
    assert c.task.id in await worker.store.heartbeat_many([(c, 5)], lease_ms=LEASE)
    assert await progress() == 19
    c = await worker.store.advance(c, now=T0, changes={"progress": 0})
    assert c is not None and c.task.progress == 19
    assert await worker.store.repoll_later(c, delay_ms=0, changes={"progress": 3})
    assert await progress() == 19
    [claimed] = await worker.claim(T0 + 1)
    done = await worker.store.finish_step(claimed, now=T0 + 1, next_step=Step.POLL, changes={"progress": 40})
    assert done is not None and done.progress == 40


async def test_admission_counts_the_channels_slots(worker: World) -> None:
    one, two = await worker.create(), await worker.create()
    [a, b] = await worker.claim(T0, limit=2)
    admitted = await worker.store.admit(
        a, channel="relay", max_concurrent=1, now=T0, status=TaskStatus.PROCESSING
    )
    assert isinstance(admitted, Claim) and admitted.task.channel == "relay"
    assert await worker.store.active_per_channel() == {"relay": 1}
    refused = await worker.store.admit(b, channel="relay", max_concurrent=1, now=T0)
    assert refused == "all 1 slots are in use"
    assert {t.id for t in (one, two)} == {a.task.id, b.task.id}


async def test_a_client_cancel_makes_the_running_steps_write_lose_and_releases_the_hold(
    worker: World,
) -> None:
    payer = await worker.paying_key(HOLD)
    task = await worker.create(owner=payer, hold=HOLD)
    [c] = await worker.claim(T0)
    admitted = await worker.store.admit(
        c,
        channel="relay",
        max_concurrent=None,
        now=T0,
        status=TaskStatus.PROCESSING,
        known_healthy=True,
        charge=HOLD,
    )
    assert isinstance(admitted, Claim)
    assert await worker.store.cancel(task.id, owner=worker.other, now=T0 + 1) is None
    cancelled = await worker.store.cancel(task.id, owner=payer, now=T0 + 1)
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert cancelled.error is not None and cancelled.error.code == "cancelled"
    assert cancelled.step is Step.CANCEL  # a submit was under way: the channel may hold a job to stop
    # The lease still holds (a submit in flight may finish), and the heartbeat says the client stopped it;
    # the step's outcome loses to the cancel, and the money stays where the cancel put it.
    check = (await worker.store.heartbeat_many([(admitted, None)], lease_ms=LEASE)).get(admitted.task.id)
    assert check is not None and check.stopped_by_client
    lost = await worker.store.finish_step(
        admitted, now=T0 + 2, next_step=Step.DONE, status=TaskStatus.COMPLETED
    )
    assert lost is None
    assert await worker.entries(task.id) == [("hold", HOLD), ("release", HOLD)]
    assert await worker.account(payer) == (HOLD, 0)
    with pytest.raises(Conflict):
        await worker.store.cancel(task.id, owner=payer, now=T0 + 3)
    await assert_ledger_consistent(worker.runtime.engine)


async def test_a_job_accepted_after_a_cancel_is_kept_and_sends_the_task_to_the_cancel_step(
    worker: World,
) -> None:
    task = await worker.create()
    [c] = await worker.claim(T0)
    started = await worker.store.advance(
        c, now=T0, status=TaskStatus.PROCESSING, changes={"channel": "relay"}
    )
    assert started is not None
    # Cancelled while no job was known: nothing to stop upstream, so the task would end here...
    cancelled = await worker.store.cancel(task.id, owner=worker.owner, now=T0 + 1)
    assert cancelled is not None and cancelled.step is Step.DONE
    # ...but the submit in flight comes back with a job: its outcome loses, its job id is kept.
    assert (
        await worker.store.finish_step(
            started, now=T0 + 2, next_step=Step.POLL, changes={"upstream_id": "job-1"}
        )
        is None
    )
    kept = await worker.store.save_upstream_job(started, now=T0 + 2, upstream_id="job-1", memo={"m": 1})
    assert kept is not None and kept.status is TaskStatus.CANCELLED and kept.step is Step.CANCEL
    assert kept.upstream_id == "job-1" and kept.upstream_state == {"m": 1} and kept.submit_intent_at is None
    assert [e.kind for e in await worker.store.events(task.id)][-1] == "upstream_job"
    assert await worker.store.release(started)
    [again] = await worker.claim(T0 + 3)  # the cancel step is due: the channel is told to stop the job
    assert again.task.id == task.id and again.task.step is Step.CANCEL


async def test_a_job_saved_for_a_task_that_did_not_end_keeps_its_step(worker: World) -> None:
    await worker.create()
    [c] = await worker.claim(T0)
    kept = await worker.store.save_upstream_job(c, now=T0, upstream_id="job-1", memo={})
    assert kept is not None and kept.step is Step.SUBMIT and kept.upstream_id == "job-1"
    assert await worker.store.finish_step(c, now=T0, next_step=Step.POLL) is None  # its version moved on


async def test_concurrent_claimers_never_share_a_task(worker: World) -> None:
    for _ in range(40):
        await worker.create()
    seen: list[str] = []

    async def claimer(name: str) -> None:
        while True:
            claims = await worker.store.claim_due(worker=name, limit=3, lease_ms=LEASE)
            if not claims:
                return
            seen.extend(c.task.id for c in claims)

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(claimer, f"w{i}")
    assert len(seen) == 40 and len(set(seen)) == 40
