"""The hot paths' reads in one driver call each: a key by its hash, a task by id and owner, a page of tasks.

Clients poll every task every second or so, so these reads run thousands of times a second. Through
SQLAlchemy's Core a point read cost about nine hops to aiosqlite's thread (cursor, execute, fetch, close,
BEGIN, ROLLBACK) or, on PostgreSQL, four round trips (pre-ping, BEGIN, SELECT, ROLLBACK). Here the SQL is
compiled once per dialect from SQLAlchemy statements (one source of truth for the tables) and run on
the driver directly:

- SQLite: one read-only connection queried on the event loop's own thread. An indexed point read takes
  tens of microseconds, less than a single hop to another thread. WAL readers never wait for writers;
  the rare moment a reader would (a checkpoint restarting the log), the connection's busy timeout is 0,
  it fails at once, and the read is retried on a worker thread with a patient connection instead of
  stalling the loop.
- PostgreSQL: a connection from a fixed-size autocommit pool, one round trip, no BEGIN or ROLLBACK, no
  pre-ping (a read on a connection the server dropped is retried once on a fresh one: reads are
  idempotent).

Only reads that tolerate autocommit semantics belong here: each statement sees the latest commit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from sqlalchemy import ARRAY, JSON, Boolean, Select, String, any_, bindparam, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vidgate.domain.tasks import SUMMARY_COLUMNS, Task, TaskSummary, summary_from_row
from vidgate.store.batching import Batcher
from vidgate.store.tables import api_keys, tasks
from vidgate.store.task_rows import row_to_task

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement's SQL for one driver, its bind names in the driver's order, and its result columns."""

    sql: str
    binds: tuple[str, ...]
    columns: tuple[str, ...]
    positional: bool
    fixed: dict[str, Any]  # binds the statement sets itself (SQLite's OFFSET 0 after a bound LIMIT)

    def params(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        merged = {**self.fixed, **values}
        if self.positional:
            return tuple(merged[name] for name in self.binds)
        return {name: merged[name] for name in self.binds}


def compile_for(stmt: Select[Any], dialect: Dialect) -> Compiled:
    compiled = stmt.compile(dialect=dialect)
    positional = bool(compiled.positional)
    binds = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
    columns = tuple(str(c.key) for c in stmt.selected_columns)
    fixed = {k: v for k, v in compiled.params.items() if v is not None}
    return Compiled(compiled.string, binds, columns, positional, fixed)


# The statements, as SQLAlchemy builds them; `compile_for` turns each into its driver's SQL once.
_KEY_BY_HASH = select(api_keys).where(api_keys.c.key_hash == bindparam("digest"))
_TASK_FOR_OWNER = select(tasks).where(
    tasks.c.id == bindparam("id"), tasks.c.owner == bindparam("owner"), tasks.c.deleted_at.is_(None)
)
_TASK_BY_ID = select(tasks).where(tasks.c.id == bindparam("id"), tasks.c.deleted_at.is_(None))
_TASKS_BY_IDS = select(tasks).where(
    tasks.c.id == any_(bindparam("ids", type_=ARRAY(String))), tasks.c.deleted_at.is_(None)
)
_LIVE = (tasks.c.owner == bindparam("owner"), tasks.c.deleted_at.is_(None))
_SUMMARY = select(*(tasks.c[name] for name in SUMMARY_COLUMNS))


def page_statement(*, descending: bool, after: bool, status: bool = False) -> Select[Any]:
    """An owner's live tasks as summaries, by id (= creation time) from `:after`, at most `:limit`
    (only those in `:status` when `status`): keyset pagination on the (owner, id) index."""
    stmt = _SUMMARY.where(*_LIVE)
    if status:
        stmt = stmt.where(tasks.c.status == bindparam("status"))
    if after:
        stmt = stmt.where(tasks.c.id < bindparam("after") if descending else tasks.c.id > bindparam("after"))
    return stmt.order_by(tasks.c.id.desc() if descending else tasks.c.id.asc()).limit(bindparam("limit"))


_PAGES = {
    (d, a, s): page_statement(descending=d, after=a, status=s)
    for d in (True, False)
    for a in (True, False)
    for s in (True, False)
}

# What raw sqlite3 hands back as text or 0/1 where SQLAlchemy's types would have decoded them.
_JSON_COLUMNS = frozenset(c.key for t in (tasks, api_keys) for c in t.c if isinstance(c.type, JSON))
_BOOL_COLUMNS = frozenset(c.key for t in (tasks, api_keys) for c in t.c if isinstance(c.type, Boolean))


class _Driver(Protocol):
    async def fetch(self, stmt: Compiled, values: dict[str, Any]) -> list[tuple[Any, ...]]: ...
    async def aclose(self) -> None: ...


class FastReads:
    """See the module docstring. Rows come back as dicts shaped like SQLAlchemy's mappings."""

    def __init__(self, url: str, *, pool_size: int = 16) -> None:
        parsed = make_url(url)
        # PostgreSQL: point reads of tasks that arrive while one is in flight go out together in the
        # next (`id = ANY(:ids)`), so a burst of polls costs a few round trips instead of one each:
        # a round trip costs psycopg and the server far more than a row does. The owner is checked
        # on each row here, the query knows ids only.
        self._coalesced: Batcher[str, Row | None] | None = None
        if parsed.get_backend_name() == "sqlite":
            if not parsed.database or parsed.database == ":memory:":
                raise ValueError("fast reads need a database file (a second connection to :memory: is empty)")
            dialect: Dialect = sqlite.dialect(paramstyle="qmark")
            self._driver: _Driver = _SqliteOnLoop(parsed.database)
            self._decode: Callable[[Row], Row] = _decode_sqlite
        else:
            dialect = pg_psycopg.dialect()  # type: ignore[no-untyped-call]
            self._driver = _PostgresPool(url, pool_size)
            self._decode = _identity
            self._tasks_by_ids = compile_for(_TASKS_BY_IDS, dialect)
            self._coalesced = Batcher(self._tasks_by_id, max_size=256)
        self._key_by_hash = compile_for(_KEY_BY_HASH, dialect)
        self._task_for_owner = compile_for(_TASK_FOR_OWNER, dialect)
        self._task_by_id = compile_for(_TASK_BY_ID, dialect)
        self._pages = {k: compile_for(v, dialect) for k, v in _PAGES.items()}

    async def _rows(self, stmt: Compiled, values: dict[str, Any]) -> list[Row]:
        return [
            self._decode(dict(zip(stmt.columns, r, strict=True)))
            for r in await self._driver.fetch(stmt, values)
        ]

    async def _tasks_by_id(self, ulids: list[str]) -> list[Row | None]:
        rows = {r["id"]: r for r in await self._rows(self._tasks_by_ids, {"ids": sorted(set(ulids))})}
        return [rows.get(ulid) for ulid in ulids]

    async def key_by_hash(self, digest: str) -> Row | None:
        rows = await self._rows(self._key_by_hash, {"digest": digest})
        return rows[0] if rows else None

    async def task(self, ulid: str, *, owner: str | None) -> Task | None:
        """A live (not deleted) task; with `owner`, only that owner's."""
        if self._coalesced is not None:
            row = await self._coalesced.submit(ulid)
            if row is None or (owner is not None and row["owner"] != owner):
                return None
            return row_to_task(row)
        if owner is None:
            rows = await self._rows(self._task_by_id, {"id": ulid})
        else:
            rows = await self._rows(self._task_for_owner, {"id": ulid, "owner": owner})
        return row_to_task(rows[0]) if rows else None

    async def page(
        self, *, owner: str, after: str | None, limit: int, descending: bool, status: str | None = None
    ) -> tuple[list[TaskSummary], bool]:
        """One page of an owner's live tasks (see `page_statement`), and whether more follow."""
        stmt = self._pages[(descending, after is not None, status is not None)]
        params = {"owner": owner, "after": after, "limit": limit + 1, "status": status}
        rows = await self._driver.fetch(stmt, params)
        return [summary_from_row(r) for r in rows[:limit]], len(rows) > limit

    async def aclose(self) -> None:
        await self._driver.aclose()


def _identity(row: Row) -> Row:
    return row


def _decode_sqlite(row: Row) -> Row:
    for name in _JSON_COLUMNS.intersection(row):
        if isinstance(row[name], str):
            row[name] = json.loads(row[name])
    for name in _BOOL_COLUMNS.intersection(row):
        if row[name] is not None:
            row[name] = bool(row[name])
    return row


class _SqliteOnLoop:
    """One read-only sqlite3 connection used only from the event loop's thread (see the module doc)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _open(self, *, busy_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            isolation_level=None,  # autocommit: no transaction is ever left open between reads
            check_same_thread=False,  # the fallback's connection is made on the loop, used on a thread
            timeout=busy_ms / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        conn.execute("PRAGMA query_only=ON")  # this connection can never write
        return conn

    async def fetch(self, stmt: Compiled, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        params = stmt.params(values)
        if self._conn is None:
            self._conn = self._open(busy_ms=0)
        try:
            return self._conn.execute(stmt.sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        return await anyio.to_thread.run_sync(self._fetch_patiently, stmt.sql, params)

    def _fetch_patiently(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
        conn = self._open(busy_ms=30_000)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _PostgresPool:
    """psycopg connections in autocommit mode from a fixed pool: waiters queue instead of the pool
    opening and closing connections above its size under a burst."""

    def __init__(self, url: str, pool_size: int) -> None:
        self._engine: AsyncEngine = create_async_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            hide_parameters=True,
        )

    async def fetch(self, stmt: Compiled, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        import psycopg

        params = stmt.params(values)
        for attempt in (1, 2):
            async with self._engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection
                assert driver is not None
                try:
                    async with driver.cursor() as cur:
                        await cur.execute(stmt.sql, params)
                        return list(await cur.fetchall())
                except psycopg.OperationalError:
                    # The server closed this connection (restart, idle timeout): drop it; a read is
                    # safe to run again, once, on a fresh one.
                    await conn.invalidate()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._engine.dispose()
