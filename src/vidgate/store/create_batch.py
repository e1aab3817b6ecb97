"""New tasks on SQLite, committed in groups: one thread hop and one fsync for every task created meanwhile.

A create used to be a transaction of its own through aiosqlite: BEGIN IMMEDIATE, two INSERTs and a
COMMIT, about a dozen hops between the event loop and aiosqlite's thread, taken one writer at a time.
Here the first create to arrive takes the engine's writer lock (store/db.py) and writes every create
queued by then (store/batching.py) in one transaction on a plain sqlite3 connection in a worker
thread, each in its own SAVEPOINT (a duplicate idempotency key fails that create alone). Creates
that arrive while it writes go in the next group. The connection runs `synchronous=FULL`: COMMIT
returns once the log is on disk, and nobody's create returns before the COMMIT of its group, so a 200
means the task survives a power cut, at the price of one fsync per group rather than per task.
Nothing waits for a group to fill: at low load a group is one task.

A priced task's hold (store/ledger.py) is made inside its SAVEPOINT, before its rows: a key that cannot
cover it fails that create alone with InsufficientQuota, and a create refused later in its SAVEPOINT
(a duplicate idempotency key) takes its hold back with it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy import JSON, Insert, bindparam, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from vidgate.errors import InsufficientQuota
from vidgate.store import ledger
from vidgate.store.batching import Batcher
from vidgate.store.dbtime import db_now_ms
from vidgate.store.tables import ledger_entries, task_events, tasks

_MAX_GROUP = 256
_DIALECT = sqlite.dialect(paramstyle="named")
_JSON_COLUMNS = frozenset(c.key for t in (tasks, task_events) for c in t.c if isinstance(c.type, JSON))
_HOLD_SQL = str(ledger.HOLD_STATEMENT.compile(dialect=_DIALECT))


@dataclass(frozen=True, slots=True)
class DbNowPlus:
    """A column value meaning "the database's clock, plus `ms`" (QueueClock.expr() + ms without an
    injected clock): due times and deadlines are on the clock every host shares."""

    ms: int = 0


DB_NOW = DbNowPlus(0)


@dataclass(frozen=True, slots=True)
class NewTask:
    """A new task's row (without its due time and deadline: they are taken from the queue clock as it
    is inserted), its `created` event, what to hold for it on its owner's key (0: none), and how long
    it may take (`deadline_at` = the insert's time + `deadline_ms`)."""

    row: dict[str, Any]
    event: dict[str, Any]
    hold: int = 0
    deadline_ms: int = 0


class SqliteCreateWriter:
    def __init__(self, path: str, writer_lock: anyio.Lock) -> None:
        self._path = path
        self._lock = writer_lock
        self._conn: sqlite3.Connection | None = None
        self._sql: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}
        self._groups: Batcher[NewTask, None] = Batcher(self._commit_group, max_size=_MAX_GROUP)

    async def insert(self, new: NewTask) -> None:
        """Insert the task row and its event (and hold its price); returns once they are committed.
        IntegrityError when the task's unique constraints refuse it, InsufficientQuota when its
        owner's key cannot cover the hold."""
        await self._groups.submit(new)

    async def _commit_group(self, group: list[NewTask]) -> list[Exception | None]:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._write_group, group)

    def _write_group(self, group: Sequence[NewTask]) -> list[Exception | None]:
        conn = self._connection()
        outcomes: list[Exception | None] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for new in group:
                conn.execute("SAVEPOINT create_task")
                try:
                    self._hold(conn, new)
                    conn.execute(*self._statement(tasks, new.row))
                    conn.execute(*self._statement(task_events, new.event))
                except sqlite3.IntegrityError as exc:
                    conn.execute("ROLLBACK TO create_task")
                    outcomes.append(IntegrityError("INSERT INTO tasks", None, exc, hide_parameters=True))
                except InsufficientQuota as exc:
                    conn.execute("ROLLBACK TO create_task")
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
                conn.execute("RELEASE create_task")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _hold(self, conn: sqlite3.Connection, new: NewTask) -> None:
        if not new.hold:
            return
        key_id = new.row["owner"]
        if conn.execute(_HOLD_SQL, {"key_id": key_id, "amount": new.hold}).fetchone() is None:
            row = conn.execute("SELECT balance, held FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            raise ledger.insufficient(new.hold, None if row is None or row[0] is None else row[0] - row[1])
        entry = ledger.hold_entry(
            key_id=key_id, task_id=new.row["id"], amount=new.hold, now=new.row["created_at"]
        )
        conn.execute(*self._statement(ledger_entries, entry))

    def _statement(self, table: Any, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The INSERT for these columns (compiled once per column set) and its parameters."""
        names = tuple(sorted(values))
        clock_columns = tuple(n for n in names if isinstance(values[n], DbNowPlus))
        key = (table.name, names, clock_columns)
        sql = self._sql.get(key)
        if sql is None:
            stmt: Insert = insert(table).values(
                {n: db_now_ms() + bindparam(n) if n in clock_columns else bindparam(n) for n in names}
            )
            sql = str(stmt.compile(dialect=_DIALECT))
            self._sql[key] = sql
        params = {
            n: v.ms if isinstance(v, DbNowPlus) else json.dumps(v) if n in _JSON_COLUMNS else v
            for n, v in values.items()
        }
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
