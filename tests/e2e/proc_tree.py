"""Looking at a process's children through /proc (Linux): render processes and their helpers."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def spawned_children(pid: int) -> list[int]:
    """`pid`'s children started by multiprocessing's spawn (render processes, `serve --workers` ones)."""
    return [child for child in children(pid) if "spawn_main" in cmdline(child)]


def render_children(pid: int) -> list[int]:
    """`pid`'s spawned render processes (multiprocessing's spawn entry point)."""
    return spawned_children(pid)


def with_environment(marker: str) -> list[int]:
    """Processes of this user whose environment holds `marker` (a test's own directory, say): what a
    test started, however reparented."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if marker.encode() in environ and is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a reparented child may stay a zombie until its new parent reaps it)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
