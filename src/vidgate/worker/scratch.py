"""Scratch directories: one per claim of a step that writes files, swept once no live claim owns it.

A step's directory is `<root>/<task id>-<lease token>`. The token is new on every claim, so the
directory is unique to the attempt: a render of an attempt that lost its task (its worker was killed,
or stalled past its lease) never writes where the next attempt reads, and what it left is told apart
from the next attempt's. A step removes its own directory when it ends; a process killed in the middle
of a step cannot, so `sweep_scratch` removes every directory whose claim no longer holds a live lease.
Several worker processes may share the root (one host, one data directory): a directory is removed
only when the database says its claim is over, never because this process does not know it.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path

import anyio

from vidgate.store.task_rows import Claim
from vidgate.store.tasks import TaskStore


def scratch_dir(root: Path, claim: Claim) -> Path:
    return root / f"{claim.task.id}-{claim.token}"


async def sweep_scratch(root: Path, store: TaskStore, *, running: Collection[Claim] = ()) -> int:
    """Remove the scratch directories under `root` whose claims are over; returns how many.

    `running` are this process's claims in flight: theirs are kept without asking the database."""
    names = await anyio.to_thread.run_sync(_list_dirs, root)
    keep = {scratch_dir(root, claim).name for claim in running}
    candidates = {name: _claim_of(name) for name in names if name not in keep}
    live = await store.live_claims({pair for pair in candidates.values() if pair is not None})
    dead = [root / name for name, pair in candidates.items() if pair not in live]
    await anyio.to_thread.run_sync(_remove_all, dead)
    return len(dead)


def _list_dirs(root: Path) -> list[str]:
    try:
        return [entry.name for entry in root.iterdir() if entry.is_dir()]
    except FileNotFoundError:
        return []


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _claim_of(name: str) -> tuple[str, str] | None:
    """(task id, lease token) from a directory's name; None for a name no claim makes (removed too:
    nothing but scratch lives here)."""
    task_id, sep, token = name.rpartition("-")
    return (task_id, token) if sep and task_id and token else None
