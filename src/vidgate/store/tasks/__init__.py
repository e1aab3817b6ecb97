"""TaskStore: the tasks table as a durable record AND a work queue.

Rules every write here follows:
- A status change is compare-and-set on `version` and appends a `task_events` row in the same
  transaction. Zero rows updated means someone else changed the task first: the caller stops.
- A claim is a lease with a fresh `lease_token`. A worker's writes are fenced by that token AND the
  version it last wrote, so a worker whose lease expired (it stalled, or was killed and came back)
  cannot overwrite the work of the worker that took the task over, and a client's cancel (which bumps
  the version) makes the running step's outcome lose. Heartbeats are fenced by the token alone: they
  must never race the step's own writes.
- Two writes are fenced by the token alone because they record facts about the upstream that must not
  be lost whatever the client did meanwhile: `save_upstream_job` (an accepted job's id) and `release`.
- "Now" for leases and due times comes from the database's clock (`QueueClock`), the one clock every
  worker host shares; times shown to clients (`created_at`, `status_update_time`) come from the caller.

The store is one class, `TaskStore`, made of one part per job (each part a module of this package):
- `creates`: every create path (the SQLite create writer, PostgreSQL's groups, a transaction of its own
  for a key with `max_active_tasks`), the hold made with each, idempotent replays;
- `reads`: a task, a page of tasks (the hot paths' fast reads when the store has them), events, slots;
- `queue`: claims, heartbeats, release, live claims;
- wake-ups: on PostgreSQL a create, a client's cancel or delete and a release NOTIFY the workers in the
  transaction that made the task due (`_common.DUE_CHANNEL`; worker/wakeups.py listens);
- `fenced`: the worker's fenced writes (`finish_step`, `repoll_later`, `advance`, `admit` and
  `admit_to_send` (with a paid create's attempt), `save_upstream_job`);
- `client_ends`: the client's cancel and delete;
- `retention`: the files due for deletion, and the record that they are gone;
- `_common`: the state they share, the write transaction, and the hold resolution of an ended task.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.clock import Clock
from vidgate.store import ledger
from vidgate.store.batching import Batcher
from vidgate.store.create_batch import NewTask, SqliteCreateWriter
from vidgate.store.dbtime import QueueClock
from vidgate.store.fast_reads import FastReads
from vidgate.store.tasks._common import DUE_CHANNEL
from vidgate.store.tasks.client_ends import ClientEnds
from vidgate.store.tasks.creates import ACTIVE_CAP_RETRY_AFTER_S, TaskCreates
from vidgate.store.tasks.fenced import FencedWrites
from vidgate.store.tasks.queue import TaskQueue
from vidgate.store.tasks.reads import TaskReads
from vidgate.store.tasks.retention import Retention

__all__ = ["ACTIVE_CAP_RETRY_AFTER_S", "DUE_CHANNEL", "TaskStore"]


class TaskStore(TaskCreates, ClientEnds, TaskReads, TaskQueue, FencedWrites, Retention):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        reads: FastReads | None = None,
        creates: SqliteCreateWriter | None = None,
        refunds: ledger.RefundPolicy | None = None,
        notify_due: bool = True,
    ) -> None:
        self.engine = engine
        # PostgreSQL: the writes that make a task due now NOTIFY the workers (`_common.DUE_CHANNEL`).
        self.notify_due = notify_due
        self.refunds = refunds or ledger.RefundPolicy()  # which ended tasks are charged (store/ledger.py)
        self.queue_clock = QueueClock(clock)
        self._reads = reads  # the hot paths' reads (`get`, `list_page`) in one driver call
        self._creates = creates  # SQLite: new tasks committed in groups (store/create_batch.py)
        # PostgreSQL: the same grouping, in one transaction per group (`_insert_group`).
        self._pg_groups: Batcher[NewTask, None] | None = None
        if engine.dialect.name == "postgresql":
            self._pg_groups = Batcher(self._insert_group, max_size=256)
