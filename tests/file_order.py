"""The order test files run in under pytest-xdist (`--dist loadfile --no-loadscope-reorder` hands whole
files to the processes in collection order): the longest first, from `tests/file_durations.json`.

xdist's own order (the files with the most tests first) left the end-to-end files, a few long tests
each that spawn servers, to the end: they ran together on oversubscribed cores, slowing timing-bound
tests past their bounds, with one process often running alone for minutes. Longest first mixes files
that mostly wait on timers (the contract suites) with those that spawn processes, and leaves the
short files to fill the end.

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
