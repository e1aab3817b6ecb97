"""`vidgate db upgrade|current`: the database schema (Alembic, imported when a command runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from vidgate.cli.local import load_settings
from vidgate.cli.output import say_rich

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Bring the database schema up to date (idempotent)."""
    from vidgate.store import db

    settings = load_settings(check_channels=False)
    db.upgrade_sync(settings.resolved_database_url, revision)
    say_rich(f"database at revision {revision}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    import anyio

    from vidgate.store import db

    settings = load_settings(check_channels=False)

    async def current() -> str | None:
        engine = db.create_engine(settings.resolved_database_url)
        try:
            return await db.current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(f"current: {anyio.run(current) or 'none'}\nhead: {db.head_revision()}")
