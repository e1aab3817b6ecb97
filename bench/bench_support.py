"""What several benchmarks share: a scratch database, a process's CPU time, a percentile.

Imported by the benchmark scripts run as `python bench/NAME.py` (their folder is then first on the
import path)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    """The `q`th percentile by nearest rank; NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of every process under it (a media pool's), alive or waited for;
    0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    # utime + stime, and cutime + cstime of the children it has already waited for
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def postgres_server() -> str:
    """The PostgreSQL server of VIDGATE_TEST_PG_URL, for a benchmark's `--db postgres`."""
    server = os.environ.get("VIDGATE_TEST_PG_URL")
    if not server:
        raise SystemExit("--db postgres needs VIDGATE_TEST_PG_URL (scripts/start-postgres prints one)")
    return server


@contextmanager
def scratch_database(server: str | None, folder: Path, prefix: str) -> Iterator[str]:
    """The URL of an empty database for one run, dropped after it: with no `server` a SQLite file in
    `folder`, else a new database on that PostgreSQL server."""
    if server is None:
        yield f"sqlite+aiosqlite:///{folder / f'{prefix}.db'}"
        return
    from vidgate.testing.databases import create_pg_database, drop_pg_database

    url = create_pg_database(server, prefix)
    try:
        yield url
    finally:
        drop_pg_database(server, url)
