"""The schema a process may run against: upgraded where the settings allow it, else checked current.

Apart from the runtime so that the commands that touch only the database (`vidgate keys`, `vidgate db`)
get it without importing the channels, the engines and the HTTP stack."""

from __future__ import annotations

from vidgate.config import Settings
from vidgate.store import db


class SchemaOutOfDate(RuntimeError):
    pass


async def prepare_database(settings: Settings) -> None:
    """Upgrade the schema when allowed (the embedded default), else insist that it is current."""
    url = settings.resolved_database_url
    if settings.should_auto_migrate:
        await db.upgrade(url)
        return
    engine = db.create_engine(url)
    try:
        current = await db.current_revision(engine)
    finally:
        await engine.dispose()
    if current != db.head_revision():
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, not {db.head_revision()}: "
            "run `vidgate db upgrade` (or set VIDGATE_AUTO_MIGRATE=true)"
        )
