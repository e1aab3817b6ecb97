"""The order test files run in under pytest-xdist (`--dist loadfile` hands whole files to the processes
in collection order): the longest first, from `tests/file_durations.json`.

In the plain alphabetical order every process ran the contract files at once (each mostly waiting on
timers: a quarter of the cores busy), then the end-to-end files at once (each spawning servers: the
cores oversubscribed, and timing-sensitive tests slowed past their bounds). Longest first mixes the
two kinds and leaves the short files to fill the end, so no process runs alone for minutes.

`scripts/file-durations` rewrites the table from a run's JUnit XML; a file missing from it counts as
`UNKNOWN_SECONDS` (a new file runs in the middle, not last)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("file_durations.json")
UNKNOWN_SECONDS = 10.0


def longest_files_first(items: list[pytest.Item], rootdir: Path) -> list[pytest.Item]:
    seconds: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(Path(item.path).relative_to(rootdir).as_posix(), []).append(item)
    order = sorted(by_file, key=lambda path: (-seconds.get(path, UNKNOWN_SECONDS), path))
    return [item for path in order for item in by_file[path]]
