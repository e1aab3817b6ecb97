"""The SQLite file the store makes and opens: WAL from its creation, so that opening a connection never
takes a lock that a reader of the same file could trip over."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from vidgate.store import db

pytestmark = pytest.mark.anyio


def journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


async def test_a_new_database_is_wal_before_any_connection_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "vidgate.db"
    db.upgrade_sync(f"sqlite+aiosqlite:///{path}")
    assert journal_mode(path) == "wal"


async def test_a_connection_opens_while_another_holds_the_write_lock(tmp_path: Path) -> None:
    """A connection that switched the file to WAL needed it exclusively: behind a writer it waited out
    the busy timeout, and a reader that meanwhile tried to write was refused at once."""
    path = tmp_path / "vidgate.db"
    db.upgrade_sync(f"sqlite+aiosqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM api_keys")
    engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        with anyio.fail_after(5):  # the busy timeout is 30 s: a wait for the lock would run out here
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM api_keys"))).scalar_one() == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        await engine.dispose()


async def test_a_file_made_in_rollback_mode_is_switched_on_first_open(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    sqlite3.connect(path).close()
    assert journal_mode(path) == "delete"
    engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert journal_mode(path) == "wal"
