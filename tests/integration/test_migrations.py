"""The migrations build exactly the schema `store/tables.py` declares, and 0003-0004 go down and up again."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

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
