"""The migrations build exactly the schema `store/tables.py` declares, and 0003-0006 go down and up again;
0005's bounds on balances hold in the database itself."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from vidgate.store import db
from vidgate.store.tables import metadata


def _diff(url: str) -> list[Any]:
    engine = create_engine(db.sync_url(url))
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_declared_one(db_url: str) -> None:
    db.upgrade_sync(db_url)
    assert _diff(db_url) == []
    db.upgrade_sync(db_url, "head")  # idempotent


def test_migrations_0003_and_0004_downgrade_and_upgrade(db_url: str) -> None:
    from alembic import command

    db.upgrade_sync(db_url)
    command.downgrade(db.alembic_config(db_url), "0003")
    assert _diff(db_url) != []  # the accounts columns and the ledger of 0004 are missing
    command.downgrade(db.alembic_config(db_url), "0002")
    assert _diff(db_url) != []  # the columns and the index of 0003 are missing again
    db.upgrade_sync(db_url)
    assert _diff(db_url) == []


# 0005: balances and holds bounded in the database; a webhook secret generation per key ----------------

CAP = 10**18  # micro-credits (docs/accounts.md)


def _insert_key(conn: Any, key_id: str, *, balance: int | None, held: int) -> None:
    conn.execute(
        text(
            "INSERT INTO api_keys (id, name, key_hash, key_hint, is_admin, created_at, balance, held)"
            " VALUES (:id, :id, :hash, 'vg-x…', false, 0, :balance, :held)"
        ),
        {"id": key_id, "hash": key_id.ljust(64, "0"), "balance": balance, "held": held},
    )


def test_migration_0005_bounds_balances_and_holds_in_the_database(db_url: str) -> None:
    from alembic import command

    db.upgrade_sync(db_url, "0004")
    engine = create_engine(db.sync_url(db_url))
    try:
        with engine.begin() as conn:
            _insert_key(conn, "rich", balance=CAP, held=CAP)
            _insert_key(conn, "free", balance=None, held=5)
        db.upgrade_sync(db_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, balance, held, webhook_secret_generation FROM api_keys"))
            assert sorted(tuple(r) for r in rows) == [("free", None, 5, 0), ("rich", CAP, CAP, 0)]
        for change in (
            "balance = balance + 1",
            f"balance = {-CAP - 1}",
            "held = held + 1",
            "held = -1",
        ):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text(f"UPDATE api_keys SET {change} WHERE id = 'rich'"))
        with engine.begin() as conn:  # the bounds themselves, and NULL (unlimited), are in
            conn.execute(text(f"UPDATE api_keys SET balance = {-CAP}, held = 0 WHERE id = 'rich'"))
            conn.execute(text(f"UPDATE api_keys SET held = {CAP} WHERE id = 'free'"))
        command.downgrade(db.alembic_config(db_url), "0004")
        assert _diff(db_url) != []  # the column of 0005 is missing
        db.upgrade_sync(db_url)
        assert _diff(db_url) == []
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(f"UPDATE api_keys SET balance = {CAP + 1} WHERE id = 'rich'"))
    finally:
        engine.dispose()


def test_migration_0005_refuses_a_database_holding_a_balance_past_the_cap(db_url: str) -> None:
    """A key the overflow already reached is named, and the database is left as it was, for the
    operator to correct before upgrading: a balance is never changed behind the ledger's back."""
    db.upgrade_sync(db_url, "0004")
    engine = create_engine(db.sync_url(db_url))
    try:
        with engine.begin() as conn:
            _insert_key(conn, "fine", balance=5, held=0)
            _insert_key(conn, "overflowed", balance=2 * CAP, held=0)
        with pytest.raises(RuntimeError, match="overflowed"):
            db.upgrade_sync(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
            balance = conn.execute(text("SELECT balance FROM api_keys WHERE id = 'overflowed'")).scalar_one()
            assert balance == 2 * CAP
    finally:
        engine.dispose()


# 0006: the attempts table; poll failures apart from the circuit ----------------------------------------


def test_migration_0006_goes_down_and_up_and_its_table_owns_a_job_once(db_url: str) -> None:
    from alembic import command

    db.upgrade_sync(db_url)
    command.downgrade(db.alembic_config(db_url), "0005")
    assert _diff(db_url) != []  # upstream_attempts and channel_health.poll_failures are gone
    db.upgrade_sync(db_url)
    assert _diff(db_url) == []
    engine = create_engine(db.sync_url(db_url))
    insert = text(
        "INSERT INTO upstream_attempts (task_id, number, channel, idempotency_key, sent_at, outcome,"
        " upstream_id) VALUES (:task, 1, 'up', :key, 0, 'accepted', 'job-1')"
    )
    try:
        with engine.begin() as conn:
            conn.execute(insert, {"task": "a", "key": "a-0"})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"task": "b", "key": "b-0"})  # another task's attempt, the same job
    finally:
        engine.dispose()


_ATTEMPT_COLUMNS = "task_id, number, channel, idempotency_key, sent_at, outcome"


def test_migration_0006_records_a_submit_in_flight_during_the_upgrade_as_unknown(db_url: str) -> None:
    """Else the worker would take the missing attempt for a create never sent, and pay again."""
    db.upgrade_sync(db_url, "0005")
    engine = create_engine(db.sync_url(db_url))
    columns = (
        "id, owner, dialect, model, prompt, images, width, height, seconds, orientation, size_label,"
        " watermark_mode, private, input, status, step, created_at, status_update_time, next_run_at,"
        " deadline_at, channel, submissions, submit_intent_at, upstream_id"
    )
    row = (
        "(:id, 'k', 'unified', 'sora-2', 'p', '[]', 720, 1280, 4, 'portrait', 'small', 'prefer_clean',"
        " false, '{}', :status, 'submit', 0, 0, 0, 1, 'up', 2, :intent, :upstream)"
    )
    try:
        with engine.begin() as conn:
            _insert_key(conn, "k", balance=None, held=0)
            for task_id, status, intent, upstream in [
                ("in-flight", "pending", 1_760_000_000_000, None),
                ("accepted", "processing", None, "job-9"),
                ("ended", "failed", 1_760_000_000_000, None),
            ]:
                conn.execute(
                    text(f"INSERT INTO tasks ({columns}) VALUES {row}"),
                    {"id": task_id, "status": status, "intent": intent, "upstream": upstream},
                )
        db.upgrade_sync(db_url)
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {_ATTEMPT_COLUMNS} FROM upstream_attempts")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("in-flight", 1, "up", "in-flight-2", 1_760_000_000_000, "unknown")]
