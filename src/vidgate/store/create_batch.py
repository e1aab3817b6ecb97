"""New tasks on SQLite, committed in groups: one thread hop and one fsync for every task created meanwhile.

A create used to be a transaction of its own through aiosqlite: BEGIN IMMEDIATE, two INSERTs and a
COMMIT, about a dozen hops between the event loop and aiosqlite's thread, taken one writer at a time.
Here the first create to arrive takes the engine's writer lock (store/db.py) and writes every create
queued by then in one transaction on a plain sqlite3 connection in a worker thread, each in its own
SAVEPOINT (a duplicate idempotency key fails that create alone). Creates that arrive while it writes
go in the next group. The connection runs `synchronous=FULL`: COMMIT returns once the log is on disk,
and nobody's create returns before the COMMIT of its group, so a 200 means the task survives a power
cut, at the price of one fsync per group rather than per task. Nothing waits for a group to fill: at
low load a group is one task.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy import JSON, Insert, bindparam, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from vidgate.store.dbtime import db_now_ms
from vidgate.store.tables import task_events, tasks

_MAX_GROUP = 256
_DIALECT = sqlite.dialect(paramstyle="named")
_JSON_COLUMNS = frozenset(c.key for t in (tasks, task_events) for c in t.c if isinstance(c.type, JSON))
# The value meaning "the database's clock" (QueueClock.expr() without an injected clock).
DB_NOW = object()


@dataclass(slots=True)
class _Pending:
    task: dict[str, Any]
    event: dict[str, Any]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SqliteCreateWriter:
    def __init__(self, path: str, writer_lock: anyio.Lock) -> None:
        self._path = path
        self._lock = writer_lock
        self._queue: list[_Pending] = []
        self._flushing = False
        self._conn: sqlite3.Connection | None = None
        self._sql: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}

    async def insert(self, task: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        """Insert the task row and its event; returns once they are committed (IntegrityError when
        the task's unique constraints refuse it)."""
        pending = _Pending(dict(task), dict(event))
        self._queue.append(pending)
        if not self._flushing:
            self._flushing = True
            # Shielded: this caller writes for everyone queued; its own cancellation (a client gone)
            # must not strand the others' creates half way.
            with anyio.CancelScope(shield=True):
                try:
                    await self._flush()
                finally:
                    self._flushing = False
        await pending.done

    async def _flush(self) -> None:
        while self._queue:
            group, self._queue = self._queue[:_MAX_GROUP], self._queue[_MAX_GROUP:]
            try:
                async with self._lock:
                    outcomes = await anyio.to_thread.run_sync(self._write_group, group)
            except Exception as exc:  # the whole group failed (disk full, locked for 30 s): all of it
                for p in group:
                    p.done.set_exception(exc)
                continue
            for p, outcome in zip(group, outcomes, strict=True):
                if outcome is None:
                    p.done.set_result(None)
                else:
                    p.done.set_exception(outcome)

    def _write_group(self, group: Sequence[_Pending]) -> list[Exception | None]:
        conn = self._connection()
        outcomes: list[Exception | None] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for p in group:
                conn.execute("SAVEPOINT create_task")
                try:
                    conn.execute(*self._statement(tasks, p.task))
                    conn.execute(*self._statement(task_events, p.event))
                except sqlite3.IntegrityError as exc:
                    conn.execute("ROLLBACK TO create_task")
                    outcomes.append(IntegrityError("INSERT INTO tasks", None, exc, hide_parameters=True))
                else:
                    outcomes.append(None)
                conn.execute("RELEASE create_task")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _statement(self, table: Any, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The INSERT for these columns (compiled once per column set) and its parameters."""
        names = tuple(sorted(values))
        clock_columns = tuple(n for n in names if values[n] is DB_NOW)
        key = (table.name, names, clock_columns)
        sql = self._sql.get(key)
        if sql is None:
            stmt: Insert = insert(table).values(
                {n: db_now_ms() if n in clock_columns else bindparam(n) for n in names}
            )
            sql = str(stmt.compile(dialect=_DIALECT))
            self._sql[key] = sql
        params = {n: json.dumps(v) if n in _JSON_COLUMNS else v for n, v in values.items() if v is not DB_NOW}
        return sql, params

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA busy_timeout=30000")  # other processes' writers
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")  # COMMIT waits for the disk: see the module doc
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
