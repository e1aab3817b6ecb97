"""Where videos, previews and normalised inputs live: a small BlobStore interface.

`LocalBlobStore` keeps them in a directory: write to a temporary file beside the target, fsync,
then `os.replace`, so a reader (or a crash) never sees half a file. `S3BlobStore` (s3_blobs.py)
implements the same interface on an S3-compatible bucket for scale-out deployments; one contract
suite (tests/contract/test_blob_store.py) runs against both.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import anyio
from anyio import AsyncFile

from vidgate.private_files import FILE_MODE, make_private_dirs
from vidgate.store.byte_ranges import ByteRange

CHUNK_BYTES = 256 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 refuses presigned URLs that live longer
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


_CONTENT_TYPES = {".mp4": "video/mp4", ".webp": "image/webp", ".jpg": "image/jpeg", ".png": "image/png"}


def content_type(key: str) -> str:
    """What a stored blob is, from its name: stores that keep headers (S3) answer presigned GETs with it."""
    return _CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")


def download_name(key: str) -> str | None:
    """The file name a result is saved as (`<task>-video.mp4`, as the streamed answer says), else None."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "videos":
        return f"{parts[1]}-{parts[2]}"
    return None


def probe_key() -> str:
    """Where /readyz writes and deletes: one key per process, so concurrent probes never collide."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip(".-_") or "host"
    return f"readyz/{host[:64]}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    sha256: str


@dataclass(slots=True)
class OpenedBlob:
    """A blob being read: its whole size, the inclusive byte span served (`end < start` when that span
    is empty) and the body of that span in chunks. Whoever opens one iterates `chunks` to the end or
    calls `aclose()`, which releases the file or the connection at once."""

    size: int
    start: int
    end: int
    chunks: AsyncGenerator[bytes, None]
    # Closing a generator that never started skips its `finally`: what it holds is released here too.
    release: Callable[[], Awaitable[None]] | None = None

    @property
    def length(self) -> int:
        return max(0, self.end - self.start + 1)

    async def aclose(self) -> None:
        await self.chunks.aclose()
        if self.release is not None:
            await self.release()


class BlobStore(Protocol):
    async def put_file(self, src: Path, key: str, *, move: bool = False) -> BlobInfo: ...
    async def put_bytes(self, data: bytes, key: str) -> BlobInfo: ...
    async def size(self, key: str) -> int | None: ...
    async def read_bytes(self, key: str) -> bytes: ...
    async def copy_to_file(self, key: str, dest: Path) -> None: ...

    async def open(self, key: str, byte_range: ByteRange | None = None) -> OpenedBlob:
        """Size and body from one request; BlobNotFound, or RangeNotSatisfiable (with the size)."""
        ...

    async def presign(self, key: str, method: Literal["GET", "HEAD"], expires_in_s: int) -> str | None:
        """A URL that serves the blob without us for `expires_in_s` seconds, or None (local files)."""
        ...

    async def probe(self) -> None:
        """Write and delete a small per-process blob; raises when the store cannot do both."""
        ...

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

    async def open(self, key: str, byte_range: ByteRange | None = None) -> OpenedBlob:
        try:
            fh = await anyio.open_file(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        try:
            # fstat of the open file: the size of exactly the bytes we are about to read.
            size = os.fstat(fh.wrapped.fileno()).st_size
            start, end = byte_range.resolve(size) if byte_range else (0, size - 1)
        except BaseException:
            await fh.aclose()
            raise
        return OpenedBlob(size, start, end, _read_span(fh, start, end), release=fh.aclose)

    async def presign(self, key: str, method: Literal["GET", "HEAD"], expires_in_s: int) -> str | None:
        check_key(key)
        return None  # local files are only ever served by the gateway itself

    async def probe(self) -> None:
        key = probe_key()
        await self.put_bytes(b"ok", key)
        await self.delete(key)

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


async def _read_span(fh: AsyncFile[bytes], start: int, end: int) -> AsyncGenerator[bytes, None]:
    """Bytes `start..end` (inclusive) in chunks: constant memory whatever the file size."""
    async with fh:
        await fh.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = await fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


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
