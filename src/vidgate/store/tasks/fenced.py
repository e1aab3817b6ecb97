"""The worker's fenced writes: a step's outcome, a re-poll, progress in the middle of a step, admission to
a channel, and the upstream job kept after the step lost. Each is fenced by the claim (`_fence`: id,
version and lease token), except `save_upstream_job` (the token only); a write that moves the task to a
terminal status resolves its hold in the same transaction (`_apply_in`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Update, bindparam, case, func, insert, null, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.domain.circuit import after_admission
from vidgate.domain.lifecycle import STEP_FOR_A_LATE_JOB, check_transition
from vidgate.domain.tasks import TERMINAL_STATUSES, Step, Task, TaskStatus
from vidgate.store.attempts import Attempt, insert_attempt
from vidgate.store.channels import lock_health, save_health
from vidgate.store.dbtime import prepared_now
from vidgate.store.tables import task_events, tasks
from vidgate.store.task_rows import Claim, ClaimLost, row_to_task
from vidgate.store.tasks._common import StoreBase, _never_lower, _occupies_slot

_TERMINAL = [s.value for s in TERMINAL_STATUSES]


@dataclass(frozen=True, slots=True)
class FromNow:
    """A time `ms` after the queue clock's now, as a fenced write's value: the database (or the injected
    clock) works it out as the statement runs."""

    ms: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    """A task admitted to a channel: the claim at its new version, and the attempt recorded with it
    (None when no paid create is to be sent)."""

    claim: Claim
    attempt: Attempt | None


class FencedWrites(StoreBase):
    async def finish_step(
        self,
        claim: Claim,
        *,
        now: int,
        next_step: Step,
        delay_ms: int = 0,
        status: TaskStatus | None = None,
        changes: Mapping[str, Any] | None = None,
        event_kind: str | None = "step",
        message: str | None = None,
    ) -> Task | None:
        """Record one step's outcome and release the lease, fenced by the claim.

        Returns the updated task, or None when the claim was lost (lease expired and another
        worker took over, or the client cancelled): the caller must then drop its result.
        A status change always writes an event; otherwise `event_kind=None` writes none (a
        routine re-poll is not worth a row). The task is due again `delay_ms` from now.
        """
        release = {
            "next_run_at": FromNow(delay_ms),
            "lease_owner": None,
            "lease_token": None,
            "lease_expires_at": None,
        }
        row = await self._apply(
            claim,
            now=now,
            step=next_step,
            status=status,
            changes={**(changes or {}), **release},
            event_kind=event_kind,
            message=message,
        )
        return row_to_task(row) if row else None

    async def repoll_later(self, claim: Claim, *, delay_ms: int, changes: Mapping[str, Any]) -> bool:
        """`finish_step` for a poll that found the job still running (the hot path): one statement (in
        autocommit on PostgreSQL: one round trip), no event, nothing read back. False when the claim was
        lost."""
        shape = tuple(sorted((key, value is None) for key, value in changes.items()))
        query = _repoll_statement(shape, self.queue_clock.injected)
        params = {f"v_{key}": value for key, value in changes.items() if value is not None}
        params.update(_fence_params(claim), delay_ms=delay_ms, **self.queue_clock.now_params())
        if self.engine.dialect.name != "postgresql":
            # SQLite: a plain write transaction is as cheap (no round trips), and its connections must
            # keep the isolation handling db.create_engine gave them (AUTOCOMMIT would reset it).
            async with self._write() as conn:
                return (await conn.execute(query, params)).rowcount == 1
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return (await conn.execute(query, params)).rowcount == 1

    async def advance(
        self,
        claim: Claim,
        *,
        now: int,
        status: TaskStatus | None = None,
        changes: Mapping[str, Any] | None = None,
        message: str | None = None,
    ) -> Claim | None:
        """Save progress in the middle of a step and keep the lease (e.g. a submit's intent, written
        before anything is sent). Returns the claim at its new version, or None when it was lost."""
        row = await self._apply(
            claim,
            now=now,
            step=claim.task.step,
            status=status,
            changes=changes or {},
            event_kind="step" if message else None,
            message=message,
        )
        return Claim(row_to_task(row), claim.worker) if row else None

    async def admit(
        self,
        claim: Claim,
        *,
        channel: str,
        max_concurrent: int | None,
        now: int,
        status: TaskStatus | None = None,
        known_healthy: bool = False,
        charge: int | None = None,
    ) -> Claim | str:
        """`admit_to_send` without an attempt: the claim at its new version, or the refusal's reason."""
        admission = await self.admit_to_send(
            claim,
            channel=channel,
            max_concurrent=max_concurrent,
            now=now,
            status=status,
            known_healthy=known_healthy,
            charge=charge,
        )
        return admission if isinstance(admission, str) else admission.claim

    async def admit_to_send(
        self,
        claim: Claim,
        *,
        channel: str,
        max_concurrent: int | None,
        now: int,
        status: TaskStatus | None = None,
        known_healthy: bool = False,
        charge: int | None = None,
        attempt_key: str | None = None,
    ) -> Admission | str:
        """Admit the task to `channel` and save the submit's intent, in one transaction: refused (the
        reason as a string) when the channel's circuit is open or all its `max_concurrent` slots are
        taken. The channel's health row is locked meanwhile, so concurrent admissions on other worker
        processes count the same slots (on SQLite, BEGIN IMMEDIATE already serialises writers).
        `known_healthy` (the channel's circuit was closed a moment ago) with no slot limit skips the
        lock: nothing is counted, and a circuit that opened within that moment costs one more try.
        `charge`: what the task costs on this channel (micro-credits), captured if it completes.
        `attempt_key`: a paid create is about to be sent with this idempotency key; its attempt is
        recorded in the same transaction (store/attempts.py), so the intent and the attempt are saved
        together or not at all, and only by the claim's holder. Its numbering cannot race: the fenced
        update of the task comes first and holds the task's row (SQLite: the single writer) until the
        commit, so a second writer's fence fails. Raises ClaimLost when the claim no longer holds."""
        priced = {} if charge is None else {"charge_amount": charge}
        async with self._write() as conn:
            intent_at: int | FromNow = FromNow()
            if not (known_healthy and max_concurrent is None):
                slot = await self._take_a_slot(conn, claim, channel, max_concurrent)
                if isinstance(slot, str):
                    return slot
                intent_at = slot
            row = await self._apply_in(
                conn,
                claim,
                now=now,
                step=claim.task.step,
                status=status,
                changes={"channel": channel, "submit_intent_at": intent_at, **priced},
                event_kind="step",
                message=f"submitting to channel {channel}",
            )
            if row is None:
                raise ClaimLost()  # rolls the health change back with it
            attempt = None
            if attempt_key is not None:
                attempt = await insert_attempt(conn, self.queue_clock, claim.task.id, channel, attempt_key)
        return Admission(Claim(row_to_task(row), claim.worker), attempt)

    async def _take_a_slot(
        self, conn: AsyncConnection, claim: Claim, channel: str, max_concurrent: int | None
    ) -> int | str:
        """In the admission's transaction: lock the channel's health row, check its circuit and its free
        slots, and record the admission on the circuit. The queue's now, or why the channel refuses."""
        queue_now = await self.queue_clock.now_ms(conn)
        health = await lock_health(conn, channel, now=queue_now)
        if not health.admits(queue_now):
            return health.describe(queue_now)
        if max_concurrent is not None:
            busy = (
                await conn.execute(
                    select(func.count())
                    .select_from(tasks)
                    .where(_occupies_slot(), tasks.c.channel == channel, tasks.c.id != claim.task.id)
                )
            ).scalar_one()
            if busy >= max_concurrent:
                return f"all {max_concurrent} slots are in use"
        admitted = after_admission(health, queue_now, probe_ms=60_000)
        if admitted != health:
            await save_health(conn, channel, admitted, now=queue_now)
        return queue_now

    async def save_upstream_job(
        self, claim: Claim, *, now: int, upstream_id: str, memo: Mapping[str, Any]
    ) -> Task | None:
        """Record an accepted upstream job even though the step's outcome lost to a client's change
        (the task was cancelled or deleted while the submit was in flight). Fenced by the token only:
        the id must be kept so that the job can be stopped. A task that has ended goes to the cancel
        step; anything else stays as it is for the step's normal handling."""
        query = (
            update(tasks)
            .where(tasks.c.id == claim.task.id, tasks.c.lease_token == claim.token)
            .values(
                upstream_id=upstream_id,
                upstream_state=dict(memo),
                submit_intent_at=None,
                step=_case_ended(STEP_FOR_A_LATE_JOB.value),
                version=tasks.c.version + 1,
            )
            .returning(*tasks.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(query)).mappings().first()
            if row is not None:
                await conn.execute(
                    insert(task_events).values(
                        task_id=claim.task.id,
                        at=now,
                        kind="upstream_job",
                        step=row["step"],
                        worker=claim.worker,
                        message=f"kept upstream job {upstream_id} after the task changed",
                    )
                )
        return row_to_task(row) if row else None

    async def _apply(
        self,
        claim: Claim,
        *,
        now: int,
        step: Step,
        status: TaskStatus | None,
        changes: Mapping[str, Any],
        event_kind: str | None,
        message: str | None,
    ) -> RowMapping | None:
        try:
            async with self._write() as conn:
                row = await self._apply_in(
                    conn,
                    claim,
                    now=now,
                    step=step,
                    status=status,
                    changes=changes,
                    event_kind=event_kind,
                    message=message,
                )
                if row is None:
                    raise ClaimLost()  # roll back: no event for a write that did not happen
                return row
        except ClaimLost:
            return None

    async def _apply_in(
        self,
        conn: AsyncConnection,
        claim: Claim,
        *,
        now: int,
        step: Step,
        status: TaskStatus | None,
        changes: Mapping[str, Any],
        event_kind: str | None,
        message: str | None,
    ) -> RowMapping | None:
        current = claim.task
        target = status or current.status
        check_transition(current.status, target)
        values: dict[str, Any] = {**changes, "step": step.value, "version": claim.version + 1}
        status_changed = target != current.status
        if status_changed:
            values.update(status=target.value, status_update_time=max(now, current.status_update_time + 1))
            if target.is_terminal:
                values["completed_at"] = now
        row = (await conn.execute(*self._fenced_update(claim, values))).mappings().first()
        if row is None:
            return None
        if status_changed and target.is_terminal:
            await self._resolve_hold(conn, row_to_task(row), now=now)
        if status_changed or event_kind is not None:
            event = {
                "task_id": current.id,
                "at": now,
                "kind": "status" if status_changed else event_kind,
                "from_status": current.status.value if status_changed else None,
                "to_status": target.value if status_changed else None,
                "step": step.value,
                "worker": claim.worker,
                "message": message,
            }
            await conn.execute(_INSERT_EVENT, event)
        return row

    def _fenced_update(self, claim: Claim, values: Mapping[str, Any]) -> tuple[Update, dict[str, Any]]:
        """The fenced UPDATE ... RETURNING of `values` (plain values, or `FromNow`), and its parameters."""
        shape = tuple(sorted((key, isinstance(value, FromNow)) for key, value in values.items()))
        params = {f"v_{k}": v.ms if isinstance(v, FromNow) else v for k, v in values.items()}
        params.update(_fence_params(claim), **self.queue_clock.now_params())
        return _fenced_statement(shape, self.queue_clock.injected), params


# A task's event, every column a bound parameter: built once, not per step.
_INSERT_EVENT = insert(task_events)

# The fence of a worker's write, as bound parameters (`_fence_params`): the row is still the version it
# claimed, under its token.
_FENCE = (
    tasks.c.id == bindparam("f_id"),
    tasks.c.version == bindparam("f_version"),
    tasks.c.lease_token == bindparam("f_token"),
)


def _fence_params(claim: Claim) -> dict[str, Any]:
    return {"f_id": claim.task.id, "f_version": claim.version, "f_token": claim.token}


@functools.lru_cache(maxsize=256)
def _fenced_statement(shape: tuple[tuple[str, bool], ...], injected_clock: bool) -> Update:
    """`_apply_in`'s fenced UPDATE ... RETURNING for a set of changed columns (each with whether it is a
    `FromNow`), built once with bound parameters (the fence's `f_id`, `f_version` and `f_token`,
    `v_<column>` for each change; `now` for an injected clock): every step's commit runs one, and
    building it and its cache key anew cost SQLAlchemy about as much as running it. The shapes are few
    (the steps' outcomes change a handful of column sets)."""
    now: Any = prepared_now(injected_clock)
    changes = {
        key: now + bindparam(f"v_{key}", type_=BigInteger())
        if from_now
        else bindparam(f"v_{key}", type_=tasks.c[key].type)
        for key, from_now in shape
    }
    return update(tasks).where(*_FENCE).values(**_monotonic(changes)).returning(*tasks.c)


@functools.cache
def _repoll_statement(shape: tuple[tuple[str, bool], ...], injected_clock: bool) -> Update:
    """`repoll_later`'s statement for a set of changed columns (each with whether it is set to NULL),
    built once with bound parameters (the fence's `f_id`, `f_version` and `f_token`, `delay_ms`,
    `v_<column>` for each change that is not NULL; `now` for an injected clock): the hot path, where
    building a statement and its cache key cost as much as running it."""
    now: Any = prepared_now(injected_clock)
    changes = {
        key: null() if is_null else bindparam(f"v_{key}", type_=tasks.c[key].type) for key, is_null in shape
    }
    return (
        update(tasks)
        .where(*_FENCE)
        .values(
            **_monotonic(changes),
            version=tasks.c.version + 1,  # the fence holds it at `version`
            next_run_at=now + bindparam("delay_ms", type_=BigInteger()),
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
        )
    )


def _case_ended(step_if_ended: str) -> Any:
    return case((tasks.c.status.in_(_TERMINAL), step_if_ended), else_=tasks.c.step)


def _monotonic(changes: Mapping[str, Any]) -> Mapping[str, Any]:
    if "progress" not in changes:
        return changes
    return {**changes, "progress": _never_lower(changes["progress"])}
