"""The record of upstream create attempts: every job a task may have caused, whoever sent it.

A paid submit writes its attempt BEFORE the request goes out (`insert_attempt`: outcome `pending`, sent
on the database's clock), in the transaction that admits the task to the channel and saves its intent
(`TaskStore.admit_to_send`, fenced by the claim: the two are saved together or not at all), and settles
it after (`settle`). The settlement is not fenced by the task's lease: a worker whose lease ran out
while an accepted submit was finishing must still record the job's id, and the worker that took the
task over finds it here (`accepted_job`) instead of paying again.

A job belongs to one task at most: `(channel, upstream_id)` is unique in the database, so a lookup
after an unknown outcome can never adopt another task's job (`settle` answers False instead).
`paid_creates` counts the creates that may have made a job, across every worker, for the hard cap.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.store.db import with_retries, write_transaction
from vidgate.store.dbtime import QueueClock, prepared_now
from vidgate.store.tables import upstream_attempts

_MAX_ERROR_CHARS = 500


class AttemptOutcome(enum.StrEnum):
    PENDING = "pending"  # sent (or about to be): no answer yet
    ACCEPTED = "accepted"  # the upstream answered with the job's id
    REFUSED = "refused"  # a refusal that proves no job was made
    UNKNOWN = "unknown"  # sent, and nothing proves either way
    ADOPTED = "adopted"  # a lookup after an unknown outcome found the job
    NOT_FOUND = "not_found"  # a lookup window passed without the job: none was made

    @property
    def may_have_made_a_job(self) -> bool:
        return self not in (AttemptOutcome.REFUSED, AttemptOutcome.NOT_FOUND)

    @property
    def settled(self) -> bool:
        return self not in (AttemptOutcome.PENDING, AttemptOutcome.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    task_id: str
    number: int
    channel: str
    idempotency_key: str
    sent_at: int
    outcome: AttemptOutcome
    upstream_id: str | None = None
    memo: Mapping[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    settled_at: int | None = None


class AttemptStore:
    def __init__(self, engine: AsyncEngine, queue_clock: QueueClock) -> None:
        self.engine = engine
        self.queue_clock = queue_clock

    async def settle(
        self,
        attempt: Attempt,
        outcome: AttemptOutcome,
        *,
        upstream_id: str | None = None,
        memo: Mapping[str, Any] | None = None,
        error: tuple[str, str] | None = None,
    ) -> bool:
        """Record what became of `attempt`. Only an open one (pending or unknown) changes, so two
        workers settling the same attempt cannot undo each other. False when nothing changed: the
        attempt was settled already, or `upstream_id` belongs to another task's attempt."""
        values: dict[str, Any] = {
            "outcome": outcome.value,
            "upstream_id": upstream_id,
            "memo": dict(memo) if memo else None,
            "settled_at": self.queue_clock.expr() if outcome.settled else None,
        }
        if error is not None:  # else what the create itself got stays (an adopted job's lost answer)
            values.update(error_code=error[0][:64], error_message=error[1][:_MAX_ERROR_CHARS])
        query = (
            update(upstream_attempts)
            .where(
                upstream_attempts.c.id == attempt.id,
                upstream_attempts.c.outcome.in_([AttemptOutcome.PENDING.value, AttemptOutcome.UNKNOWN.value]),
            )
            .values(**values)
        )

        async def write() -> bool:
            async with write_transaction(self.engine) as conn:
                return (await conn.execute(query)).rowcount == 1

        try:  # an upstream job's id is learnt once: a dropped connection must not lose it
            return await with_retries(write)
        except IntegrityError:
            return False  # the job is another task's

    async def for_task(self, task_id: str) -> list[Attempt]:
        query = (
            select(upstream_attempts)
            .where(upstream_attempts.c.task_id == task_id)
            .order_by(upstream_attempts.c.number)
        )
        async with self.engine.connect() as conn:
            return [_attempt(row) for row in (await conn.execute(query)).mappings()]

    async def owned(self, channel: str, upstream_ids: Sequence[str]) -> set[str]:
        """Which of these jobs some task's attempt already holds."""
        if not upstream_ids:
            return set()
        query = select(upstream_attempts.c.upstream_id).where(
            upstream_attempts.c.channel == channel, upstream_attempts.c.upstream_id.in_(list(upstream_ids))
        )
        async with self.engine.connect() as conn:
            return {row[0] for row in await conn.execute(query)}


async def insert_attempt(
    conn: AsyncConnection, queue_clock: QueueClock, task_id: str, channel: str, idempotency_key: str
) -> Attempt:
    """In `conn`'s transaction, record a create about to be sent: `pending`, the task's next number and
    the send time worked out by the database as it inserts (one statement). A second writer numbering
    the same task at once fails the unique (task, number) with an IntegrityError."""
    query = _insert_statement(queue_clock.injected)
    params = {
        "a_task_id": task_id,
        "a_channel": channel,
        "a_key": idempotency_key,
        **queue_clock.now_params(),
    }
    return _attempt((await conn.execute(query, params)).mappings().one())


@functools.cache
def _insert_statement(injected_clock: bool) -> Insert:
    """`insert_attempt`'s statement, built once with bound parameters (`a_task_id`, `a_channel`,
    `a_key`; `now` for an injected clock): every paid submit runs it."""
    task_id = bindparam("a_task_id", type_=upstream_attempts.c.task_id.type)
    number = (
        select(func.coalesce(func.max(upstream_attempts.c.number), 0) + 1)
        .where(upstream_attempts.c.task_id == task_id)
        .scalar_subquery()
    )
    return (
        insert(upstream_attempts)
        .values(
            task_id=task_id,
            number=number,
            channel=bindparam("a_channel", type_=upstream_attempts.c.channel.type),
            idempotency_key=bindparam("a_key", type_=upstream_attempts.c.idempotency_key.type),
            sent_at=prepared_now(injected_clock),
            outcome=AttemptOutcome.PENDING.value,
        )
        .returning(*upstream_attempts.c)
    )


def paid_creates(attempts: Sequence[Attempt]) -> int:
    """Creates that may have made (and billed) a job: one per idempotency key, since a replay of a key
    to a channel that dedupes on it cannot make a second job."""
    return len({(a.channel, a.idempotency_key) for a in attempts if a.outcome.may_have_made_a_job})


def accepted_job(attempts: Sequence[Attempt], key: str) -> Attempt | None:
    """The attempt of submission `key` that got (or found) its job, if any."""
    for attempt in attempts:
        if attempt.idempotency_key == key and attempt.upstream_id is not None:
            return attempt
    return None


def _attempt(row: object) -> Attempt:
    values = dict(row)  # type: ignore[call-overload]
    values["outcome"] = AttemptOutcome(values["outcome"])
    return Attempt(**values)
