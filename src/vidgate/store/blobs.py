"""Where videos, previews and normalised inputs live: a small BlobStore interface.

`LocalBlobStore` keeps them in a directory: write to a temporary file beside the target, fsync,
then `os.replace`, so a reader (or a crash) never sees half a file. An S3-compatible store can
implement the same interface for scale-out deployments.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from vidgate.private_files import FILE_MODE, make_private_dirs

CHUNK_BYTES = 256 * 1024
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


# Where a task's files live. Everything stored for a task is under one of these prefixes, so deleting
# a task (or its media, at the end of retention) is deleting `<prefix>/<task id>` for each.
TASK_PREFIXES = ("videos", "inputs", "uploads")


# A task's result and its previews, by variant (the names the OpenAI dialect's `variant` uses).
MEDIA_FILES = {"video": "video.mp4", "thumbnail": "thumbnail.webp", "spritesheet": "spritesheet.jpg"}


def media_prefix(task_id: str) -> str:
    """Where a task's result and previews live (`media_key`)."""
    return f"videos/{task_id}"


def media_key(task_id: str, variant: str) -> str:
    return f"{media_prefix(task_id)}/{MEDIA_FILES[variant]}"


def input_key(task_id: str, index: int) -> str:
    """A client image after ingest, normalised to PNG."""
    return f"inputs/{task_id}/{index}.png"


def upload_key(task_id: str) -> str:
    """An `input_reference` file uploaded with the create request."""
    return f"uploads/{task_id}/input_reference"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    sha256: str


class BlobStore(Protocol):
    async def put_file(self, src: Path, key: str, *, move: bool = False) -> BlobInfo: ...
    async def put_bytes(self, data: bytes, key: str) -> BlobInfo: ...
    async def size(self, key: str) -> int | None: ...
    async def read_bytes(self, key: str) -> bytes: ...
    async def copy_to_file(self, key: str, dest: Path) -> None: ...
    def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> None: ...


class BlobNotFound(LookupError):
    pass


def check_key(key: str) -> str:
    """Keys are relative, slash-separated, with no `..` or hidden parts: they can never escape the root."""
    if not _KEY_RE.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        make_private_dirs(self.root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, src: Path, key: str, *, move: bool = False) -> BlobInfo:
        return await anyio.to_thread.run_sync(self._put_file, src, key, move)

    async def put_bytes(self, data: bytes, key: str) -> BlobInfo:
        return await anyio.to_thread.run_sync(self._put_bytes, data, key)

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.Path(self.path(key)).stat()).st_size
        except FileNotFoundError:
            return None

    async def read_bytes(self, key: str) -> bytes:
        try:
            return await anyio.Path(self.path(key)).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    async def copy_to_file(self, key: str, dest: Path) -> None:
        try:
            await anyio.to_thread.run_sync(shutil.copyfile, self.path(key), dest)
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    async def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start..end` (inclusive) in chunks: constant memory whatever the file size."""
        try:
            fh = await anyio.open_file(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        async with fh:
            await fh.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await fh.read(min(CHUNK_BYTES, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        await anyio.Path(self.path(key)).unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> None:
        target = self.path(prefix.rstrip("/"))
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(target, ignore_errors=True))

    # Blocking halves, run in a worker thread -------------------------------------------------

    def _put_file(self, src: Path, key: str, move: bool) -> BlobInfo:
        dest = self.path(key)
        make_private_dirs(dest.parent)
        digest = hashlib.sha256()
        if move and src.stat().st_dev == dest.parent.stat().st_dev:
            with src.open("rb") as fh:
                for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
                    digest.update(chunk)
            _fsync_file(src)
            os.chmod(src, FILE_MODE)  # it keeps its mode: whoever wrote it (PyAV, say) used the umask's
            os.replace(src, dest)
            return BlobInfo(key, dest.stat().st_size, digest.hexdigest())
        with src.open("rb") as fh, _atomic_writer(dest) as out:
            for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
                digest.update(chunk)
                out.write(chunk)
        if move:
            src.unlink()
        return BlobInfo(key, dest.stat().st_size, digest.hexdigest())

    def _put_bytes(self, data: bytes, key: str) -> BlobInfo:
        dest = self.path(key)
        make_private_dirs(dest.parent)
        with _atomic_writer(dest) as out:
            out.write(data)
        return BlobInfo(key, len(data), hashlib.sha256(data).hexdigest())


class _atomic_writer:
    """A file opened beside `dest` that becomes `dest` only once fully written and synced."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        self.tmp = Path(name)
        self.fh = os.fdopen(fd, "wb")

    def __enter__(self) -> _atomic_writer:
        return self

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if exc_type is None:
                os.replace(self.tmp, self.dest)
        finally:
            self.tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def delete_task_files(blobs: BlobStore, task_id: str) -> None:
    for prefix in TASK_PREFIXES:
        await blobs.delete_prefix(f"{prefix}/{task_id}")
