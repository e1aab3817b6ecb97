"""Directories and files only the gateway's own user can read.

The data dir holds prompts and callback URLs (the database), the signing key and every video, so what
vidgate creates there is 0700 (directories) and 0600 (files), whatever the process's umask lets through
by default. Directories and files that already exist keep their modes: those are the operator's choice.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dirs(path: Path) -> None:
    """`mkdir -p path`, each directory it creates 0700 (`Path.mkdir(parents=True)` gives the parents
    the default mode, usually 0755)."""
    missing: list[Path] = []
    current = path.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)  # exist_ok: another process may have made it


def make_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists, so that whatever opens it next (SQLite, which
    gives its -wal and -shm files the database's mode) starts from a private file."""
    make_private_dirs(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
