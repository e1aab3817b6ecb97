"""Throwaway PostgreSQL databases for tests, sandboxes and benchmarks: each made empty on a server for
one run and dropped after it (`WITH (FORCE)`: a killed process may still hold connections)."""

from __future__ import annotations

import uuid

import psycopg
from sqlalchemy.engine import make_url


def create_pg_database(server_url: str, prefix: str = "vgtest") -> str:
    """Make an empty database named `prefix_<random>` on the server of `server_url` (a SQLAlchemy URL,
    any database on it); its URL, with the same driver and credentials."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(server_url: str, url: str) -> None:
    """Drop the database of `url` (made by `create_pg_database`), connected through `server_url`."""
    name = make_url(url).database
    with psycopg.connect(_conninfo(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _conninfo(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (no `+driver`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
