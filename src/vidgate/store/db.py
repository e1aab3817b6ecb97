"""Engine factory and schema migrations for SQLite (aiosqlite) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import anyio
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vidgate.private_files import make_private_file

T = TypeVar("T")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Marks a connection whose transactions will write; on SQLite they start with BEGIN IMMEDIATE.
WRITE_OPTION = "vidgate_write"

# SQLite takes one writer at a time. Left to SQLite, writers that find the lock taken poll it with
# sleeps of up to 100 ms (its busy handler), so under a burst of creates a write could wait a second
# for a lock that was free most of that time. Within a process, writers instead wait their turn on
# this lock, first come first served, and SQLite's busy timeout only arbitrates between processes.
_SQLITE_WRITERS: WeakKeyDictionary[Engine, anyio.Lock] = WeakKeyDictionary()
# Set while a task holds its engine's writer: a write transaction opened inside another would wait
# for itself forever, so it fails at once instead.
_holding_writer: ContextVar[bool] = ContextVar("vidgate_holding_writer", default=False)
_SQLITE_POOL_SIZE = 24  # connections a SQLite engine keeps open (and as many more at a peak)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine; on SQLite with WAL, a busy timeout and write locks taken up front.

    `hide_parameters`: a database error's message (and so its logged traceback) must not carry the
    statement's values, which hold prompts and callback URLs.

    SQLite's default deferred BEGIN lets a read-then-write transaction fail with SQLITE_BUSY (a
    stale snapshot) that busy_timeout does not retry; BEGIN IMMEDIATE takes the write lock first,
    so writers queue instead of failing. Reads keep a plain BEGIN so they never wait for writers.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pooled: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            make_private_file(Path(parsed.database))
            # Kept, not opened per use: a worker's 16 steps at once, plus the API, read concurrently, and
            # beyond the default 5 kept connections every read opened one (a thread started, four
            # PRAGMAs) and closed it after (~1 ms of CPU each, on most steps of a burst). An idle one
            # costs a parked thread. (An in-memory database has one static connection.)
            pooled = {"pool_size": _SQLITE_POOL_SIZE, "max_overflow": _SQLITE_POOL_SIZE}
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": 30}, hide_parameters=True, **pooled
        )
        _install_sqlite_hooks(engine)
        _SQLITE_WRITERS[engine.sync_engine] = anyio.Lock()
        return engine
    return create_async_engine(
        # The hot reads have a pool of their own (store/fast_reads.py); this one serves writes and the
        # rest. Budget per process: docs/scaling.md.
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        hide_parameters=True,
    )


def sqlite_writer_lock(engine: AsyncEngine) -> anyio.Lock | None:
    """The in-process writer lock of a SQLite engine (None on PostgreSQL): every writer takes it."""
    return _SQLITE_WRITERS.get(engine.sync_engine)


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write (BEGIN IMMEDIATE on SQLite): commits on success, else rolls back.

    On SQLite it first takes the engine's writer lock (above); never await anything slow inside."""
    lock = sqlite_writer_lock(engine)
    if lock is None:
        async with _transaction(engine) as conn:
            yield conn
        return
    if _holding_writer.get():
        raise RuntimeError("a write transaction was opened inside another: it would wait for itself")
    async with lock:
        token = _holding_writer.set(True)
        try:
            async with _transaction(engine) as conn:
                yield conn
        finally:
            _holding_writer.reset(token)


@asynccontextmanager
async def _transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            yield conn


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's begin hook below (the pysqlite/aiosqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # Switched only when it is not yet WAL (a file older than `_make_wal`): a switch locks the file.
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def sync_url(url: str) -> str:
    """The same database through a synchronous driver, for Alembic."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database backend {backend!r}; use sqlite or postgresql")


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["sqlalchemy_url"] = sync_url(url)
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def upgrade_sync(url: str, revision: str = "head") -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        make_private_file(Path(parsed.database))
        _make_wal(Path(parsed.database))
    command.upgrade(alembic_config(url), revision)


def _make_wal(path: Path) -> None:
    """Put a SQLite file in WAL mode before anything else opens it (the mode is kept in the file).
    Connections would switch it themselves, but a switch takes an exclusive lock: a reader of the same
    file that then tried to write was refused at once ("database is locked", SQLite's deadlock
    avoidance, no busy wait), as when the API and a worker opened a new database together."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


async def upgrade(url: str, revision: str = "head") -> None:
    """Run migrations (blocking Alembic) off the event loop."""
    await anyio.to_thread.run_sync(upgrade_sync, url, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


# Transient errors ------------------------------------------------------------------------------------

_TRANSIENT_TRIES = (0.1, 0.4, 1.0)  # waits between tries of a write that must not be lost


def is_transient(exc: BaseException) -> bool:
    """A database error that another try may not meet: a dropped or reset connection, a lock timeout,
    a failover. A constraint violation or a bad statement is not."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)


async def with_retries(write: Callable[[], Awaitable[T]]) -> T:
    """Run `write`, again after a transient database error (a few times, briefly): for writes that
    record a fact nothing else could learn again, such as an upstream job's id. `write` must be safe to
    run twice (fenced, or conditional on the row's state)."""
    for wait in _TRANSIENT_TRIES:
        try:
            return await write()
        except Exception as exc:
            if not is_transient(exc):
                raise
            await anyio.sleep(wait)
    return await write()
