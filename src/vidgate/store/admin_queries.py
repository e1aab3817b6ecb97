"""The admin API's reads across every key: the keys themselves (a page by id), tasks with filters and a
cursor, usage per key and model over a time range, and what each channel has done lately.

Reads only: every change to a key goes through `KeyStore` (which keeps its key cache right), and these
queries never write. They are SQLAlchemy Core that runs unchanged on SQLite and PostgreSQL: time buckets
are integer division of the millisecond timestamps, which both engines do alike for BIGINT columns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Select, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.domain.tasks import TaskError, TaskStatus
from vidgate.store.keys import ApiKey, row_to_key
from vidgate.store.ledger import CAPTURE, RELEASE
from vidgate.store.tables import api_keys, ledger_entries, tasks

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


# Keys --------------------------------------------------------------------------------------------------


async def keys_page(
    engine: AsyncEngine, *, include_revoked: bool, after: str | None, limit: int
) -> tuple[list[ApiKey], bool]:
    """One page of keys, oldest first by id (ULIDs: creation order), and whether more follow."""
    query = select(api_keys).order_by(api_keys.c.id).limit(limit + 1)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    if after is not None:
        query = query.where(api_keys.c.id > after)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [row_to_key(r) for r in rows[:limit]], len(rows) > limit


# Tasks -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Every field None = no filter. Times are Unix ms: created_from inclusive, created_before exclusive."""

    status: TaskStatus | None = None
    channel: str | None = None
    model: str | None = None
    key_id: str | None = None
    created_from: int | None = None
    created_before: int | None = None


@dataclass(frozen=True, slots=True)
class AdminTask:
    """A task as an admin sees it: who made it, where it went, what it cost. Times in Unix ms."""

    id: str
    key_id: str
    key_name: str
    dialect: str
    model: str
    status: TaskStatus
    progress: int
    channel: str | None
    width: int
    height: int
    seconds: int
    created_at: int
    completed_at: int | None
    error: TaskError | None
    hold_amount: int | None
    charge_amount: int | None
    deleted: bool


_TASK_COLUMNS = (
    tasks.c.id,
    tasks.c.owner,
    api_keys.c.name,
    tasks.c.dialect,
    tasks.c.model,
    tasks.c.status,
    tasks.c.progress,
    tasks.c.channel,
    tasks.c.width,
    tasks.c.height,
    tasks.c.seconds,
    tasks.c.created_at,
    tasks.c.completed_at,
    tasks.c.error_code,
    tasks.c.error_message,
    tasks.c.hold_amount,
    tasks.c.charge_amount,
    tasks.c.deleted_at,
)


def _task_conditions(f: TaskFilter) -> list[Any]:
    conditions: list[Any] = []
    if f.status is not None:
        conditions.append(tasks.c.status == f.status.value)
    if f.channel is not None:
        conditions.append(tasks.c.channel == f.channel)
    if f.model is not None:
        conditions.append(tasks.c.model == f.model)
    if f.key_id is not None:
        conditions.append(tasks.c.owner == f.key_id)
    if f.created_from is not None:
        conditions.append(tasks.c.created_at >= f.created_from)
    if f.created_before is not None:
        conditions.append(tasks.c.created_at < f.created_before)
    return conditions


async def tasks_page(
    engine: AsyncEngine, f: TaskFilter, *, after: str | None, limit: int
) -> tuple[list[AdminTask], bool]:
    """One page of every key's tasks, deleted ones included, newest first (by ULID: the cursor is the
    last task's id), and whether more follow."""
    conditions = _task_conditions(f)
    if after is not None:
        conditions.append(tasks.c.id < after)
    query = (
        select(*_TASK_COLUMNS)
        .select_from(tasks.join(api_keys, api_keys.c.id == tasks.c.owner))
        .where(*conditions)
        .order_by(tasks.c.id.desc())
        .limit(limit + 1)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_admin_task(tuple(r)) for r in rows[:limit]], len(rows) > limit


async def task_by_id(engine: AsyncEngine, ulid: str) -> AdminTask | None:
    """One task of any key, deleted or not."""
    query = (
        select(*_TASK_COLUMNS)
        .select_from(tasks.join(api_keys, api_keys.c.id == tasks.c.owner))
        .where(tasks.c.id == ulid)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else _admin_task(tuple(row))


def _admin_task(row: Sequence[Any]) -> AdminTask:
    (id_, owner, name, dialect, model, status, progress, channel, width, height, seconds, created_at,
     completed_at, error_code, error_message, hold_amount, charge_amount, deleted_at) = row  # fmt: skip
    return AdminTask(
        id=id_,
        key_id=owner,
        key_name=name,
        dialect=dialect,
        model=model,
        status=TaskStatus(status),
        progress=progress,
        channel=channel,
        width=width,
        height=height,
        seconds=seconds,
        created_at=created_at,
        completed_at=completed_at,
        error=TaskError(error_code, error_message or "") if error_code else None,
        hold_amount=hold_amount,
        charge_amount=charge_amount,
        deleted=deleted_at is not None,
    )


# Usage -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One key's use of one model over the range (or one bucket of it, from `period_start` ms on)."""

    key_id: str
    key_name: str
    model: str
    period_start: int | None
    tasks: int
    completed: int
    failed: int
    cancelled: int
    seconds_completed: int
    credits_charged: int
    credits_refunded: int


async def usage(
    engine: AsyncEngine,
    *,
    start: int,
    end: int,
    key_id: str | None = None,
    model: str | None = None,
    bucket_ms: int | None = None,
) -> list[UsageRow]:
    """Tasks created in [start, end) (Unix ms), deleted ones included (they were made, and maybe paid
    for), counted per key and model, and per `bucket_ms` of creation time when given (UTC days and
    hours: Unix time has no leap seconds, so a day is always 86,400,000 ms). Credits are the ledger's
    captures and releases of those tasks, whenever they were entered."""
    scope = _task_conditions(TaskFilter(key_id=key_id, model=model, created_from=start, created_before=end))
    # Each task's captures and releases first, so that joining them cannot count a task twice.
    money = (
        select(
            ledger_entries.c.task_id,
            func.sum(_if(ledger_entries.c.kind == CAPTURE, ledger_entries.c.amount)).label("charged"),
            func.sum(_if(ledger_entries.c.kind == RELEASE, ledger_entries.c.amount)).label("refunded"),
        )
        .select_from(ledger_entries.join(tasks, tasks.c.id == ledger_entries.c.task_id))
        .where(ledger_entries.c.kind.in_([CAPTURE, RELEASE]), *scope)
        .group_by(ledger_entries.c.task_id)
        .subquery()
    )
    period: Any = literal(None, BigInteger)
    if bucket_ms is not None:
        # Inlined, not bound: the GROUP BY must repeat the very same expression as the SELECT.
        size = literal(bucket_ms, BigInteger, literal_execute=True)
        period = (tasks.c.created_at // size) * size
    status = tasks.c.status
    query: Select[Any] = (
        select(
            tasks.c.owner,
            func.max(api_keys.c.name),
            tasks.c.model,
            period,
            func.count(),
            func.sum(_if(status == TaskStatus.COMPLETED.value, 1)),
            func.sum(_if(status == TaskStatus.FAILED.value, 1)),
            func.sum(_if(status == TaskStatus.CANCELLED.value, 1)),
            func.sum(_if(status == TaskStatus.COMPLETED.value, tasks.c.seconds)),
            func.sum(func.coalesce(money.c.charged, 0)),
            func.sum(func.coalesce(money.c.refunded, 0)),
        )
        .select_from(
            tasks.join(api_keys, api_keys.c.id == tasks.c.owner).outerjoin(
                money, money.c.task_id == tasks.c.id
            )
        )
        .where(*scope)
        .group_by(tasks.c.owner, tasks.c.model, *([period] if bucket_ms is not None else []))
        .order_by(tasks.c.owner, tasks.c.model, *([period] if bucket_ms is not None else []))
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        UsageRow(
            key_id=r[0],
            key_name=r[1],
            model=r[2],
            period_start=None if r[3] is None else int(r[3]),
            tasks=int(r[4]),
            completed=int(r[5] or 0),
            failed=int(r[6] or 0),
            cancelled=int(r[7] or 0),
            seconds_completed=int(r[8] or 0),
            credits_charged=int(r[9] or 0),
            credits_refunded=int(r[10] or 0),
        )
        for r in rows
    ]


def _if(condition: Any, value: Any) -> Any:
    return case((condition, value), else_=0)


# Channels ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecentOutcomes:
    completed: int = 0
    failed: int = 0


async def recent_outcomes(
    engine: AsyncEngine, *, since: int, max_task_age_ms: int
) -> dict[str, RecentOutcomes]:
    """Per channel, the tasks that completed or failed at `since` (Unix ms) or later.

    `completed_at` has no index; the primary key bounds the scan instead. A task ends at most about
    its deadline after it was created, and its ULID starts with its creation time (the wall clock's,
    which is why the floor comes from `time.time()`), so ids older than `max_task_age_ms` before the
    window cannot have ended in it."""
    floor = ulid_floor(min(since, int(time.time() * 1000)) - max_task_age_ms)
    query = (
        select(tasks.c.channel, tasks.c.status, func.count())
        .where(
            tasks.c.id >= floor,
            tasks.c.channel.is_not(None),
            tasks.c.status.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value]),
            tasks.c.completed_at >= since,
        )
        .group_by(tasks.c.channel, tasks.c.status)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    counts: dict[str, dict[str, int]] = {}
    for channel, status, n in rows:
        counts.setdefault(channel, {})[status] = int(n)
    return {
        channel: RecentOutcomes(by.get(TaskStatus.COMPLETED.value, 0), by.get(TaskStatus.FAILED.value, 0))
        for channel, by in counts.items()
    }


def ulid_floor(ms: int) -> str:
    """The smallest lowercase ULID of millisecond `ms`: its 48-bit time in 10 Crockford characters,
    then zeros (ids compare as strings, the list cursors rely on the same)."""
    ms = max(0, min(ms, 2**48 - 1))
    digits = []
    for _ in range(10):
        ms, rest = divmod(ms, 32)
        digits.append(_CROCKFORD[rest])
    return "".join(reversed(digits)) + "0" * 16
