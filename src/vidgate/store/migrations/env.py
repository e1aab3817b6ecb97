"""Alembic environment: the URL comes from `vidgate.store.db.alembic_config`, never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from vidgate.store.tables import metadata

config = context.config
url = config.attributes["sqlalchemy_url"]


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table.
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
