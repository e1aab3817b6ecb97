"""The BlobStore on an S3-compatible bucket, through obstore (Rust's object_store).

Memory per transfer stays bounded both ways:
- uploads go from a file (`Path`) or from bytes already in memory, never from an async iterator
  (obstore issue #540: such uploads buffered whole bodies); files above `_PART_BYTES` go up as a
  multipart upload, part by part;
- reads come in `SEGMENT_BYTES` segments, each its own ranged GET streamed in `CHUNK_BYTES` chunks.
  The HTTP client's total `timeout` covers a whole response, so one GET for a 50 MB video would cut
  off a slow client mid-body; a segment must only outlive the time a client needs for 8 MiB.

The obstore store (and its Tokio runtime) is built in the serving process by `open_blob_store`, never
before a fork. Keys are checked with `check_key` exactly as the local store checks them.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import obstore
from obstore.exceptions import BaseError as StoreError
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from vidgate.store.blobs import (
    MAX_PRESIGN_SECONDS,
    BlobInfo,
    BlobNotFound,
    OpenedBlob,
    check_key,
    content_type,
    download_name,
    probe_key,
)
from vidgate.store.byte_ranges import ByteRange, RangeNotSatisfiable

if TYPE_CHECKING:
    from obstore import GetOptions, GetResult, SuffixRange
    from obstore.store import ClientConfig, RetryConfig

    from vidgate.config import Settings

SEGMENT_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 256 * 1024
_PART_BYTES = 8 * 1024 * 1024  # multipart above this; S3 wants parts of at least 5 MiB
_PART_CONCURRENCY = 4  # parts in flight per upload: bounds the memory of one upload to about 32 MiB
_HASH_BYTES = 1024 * 1024
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys

# Long enough for one segment to a slow client (8 MiB in 300 s is 28 KB/s); `read_timeout` catches a
# stalled bucket (it restarts on every read), `connect_timeout` an unreachable one.
_CLIENT_OPTIONS: ClientConfig = {"timeout": "300s", "read_timeout": "30s", "connect_timeout": "5s"}
# A few quick retries: a request that fails for longer is better reported (a 5xx, /readyz) than hidden.
_RETRY: RetryConfig = {
    "max_retries": 3,
    "retry_timeout": timedelta(seconds=15),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
}

_NOT_FOUND = (FileNotFoundError, NotFoundError)


def store_options(settings: Settings) -> dict[str, Any]:
    """The S3Store keyword arguments for these settings. Only what is set is passed: obstore reads the
    `AWS_*` environment itself and the arguments override it, so VIDGATE_S3__* wins over AWS_*, which
    wins over the instance's role. The result holds the secret: never log it."""
    s3 = settings.s3
    config: dict[str, Any] = {}
    if s3.endpoint:
        config["endpoint"] = s3.endpoint
    if s3.region:
        config["region"] = s3.region
    if s3.access_key_id is not None and s3.secret_access_key is not None:
        config["access_key_id"] = s3.access_key_id
        config["secret_access_key"] = s3.secret_access_key.get_secret_value()
        if s3.session_token is not None:
            config["session_token"] = s3.session_token.get_secret_value()
    if s3.virtual_hosted_style:
        config["virtual_hosted_style_request"] = True
    client: ClientConfig = {**_CLIENT_OPTIONS}
    if s3.allow_http:
        client["allow_http"] = True
    return {"config": config, "client_options": client, "retry_config": _RETRY}


class S3BlobStore:
    def __init__(self, store: S3Store) -> None:
        self._store = store

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        if not settings.storage_url:
            raise ValueError("S3BlobStore needs storage_url (s3://bucket/prefix)")
        return cls(S3Store.from_url(settings.storage_url, **store_options(settings)))

    def __repr__(self) -> str:
        return f"S3BlobStore({self._store!r})"  # obstore's repr names the bucket and prefix, no secret

    async def put_file(self, src: Path, key: str, *, move: bool = False) -> BlobInfo:
        check_key(key)
        size, digest = await anyio.to_thread.run_sync(_hash_file, src)
        await self._upload(key, src)
        if move:
            await anyio.Path(src).unlink()
        return BlobInfo(key, size, digest)

    async def put_bytes(self, data: bytes, key: str) -> BlobInfo:
        check_key(key)
        await self._upload(key, data)
        return BlobInfo(key, len(data), hashlib.sha256(data).hexdigest())

    async def _upload(self, key: str, body: Path | bytes) -> None:
        """One object from a file or bytes (never an async iterator: obstore issue #540), in parts
        above `_PART_BYTES`, with the content type its GETs (and presigned GETs) answer with."""
        await obstore.put_async(
            self._store,
            key,
            body,
            attributes=_attributes(key),
            chunk_size=_PART_BYTES,
            max_concurrency=_PART_CONCURRENCY,
        )

    async def size(self, key: str) -> int | None:
        check_key(key)
        try:
            meta = await obstore.head_async(self._store, key)
        except _NOT_FOUND:
            return None
        return meta["size"]

    async def read_bytes(self, key: str) -> bytes:
        opened = await self.open(key)
        try:
            return b"".join([chunk async for chunk in opened.chunks])
        finally:
            await opened.aclose()

    async def copy_to_file(self, key: str, dest: Path) -> None:
        opened = await self.open(key)
        try:
            async with await anyio.open_file(dest, "wb") as out:
                async for chunk in opened.chunks:
                    await out.write(chunk)
        finally:
            await opened.aclose()

    async def open(self, key: str, byte_range: ByteRange | None = None) -> OpenedBlob:
        check_key(key)
        first_range = await self._first_segment(key, byte_range)
        try:
            first = await obstore.get_async(self._store, key, options={"range": first_range})
        except _NOT_FOUND as exc:
            raise BlobNotFound(key) from exc
        except StoreError:
            # A range starting at or past the end (any range of an empty blob) is a 416 from S3:
            # say so with the size, and answer an unranged read of an empty blob with no bytes.
            size = await self._size_or_raise(key)
            start, end = byte_range.resolve(size) if byte_range else (0, size - 1)
            if size == 0:
                return OpenedBlob(0, start, end, _no_chunks())
            raise
        size = first.meta["size"]
        start, end = byte_range.resolve(size) if byte_range else (0, size - 1)
        if first.range[0] != start:
            raise OSError(f"the store answered bytes {first.range} of {key!r}, not from {start}")
        return OpenedBlob(size, start, end, self._segments(key, first, end))

    async def presign(self, key: str, method: Literal["GET", "HEAD"], expires_in_s: int) -> str | None:
        check_key(key)
        if not 1 <= expires_in_s <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"a presigned URL lives 1 s to 7 days, not {expires_in_s} s")
        return await obstore.sign_async(self._store, method, key, timedelta(seconds=expires_in_s))

    async def probe(self) -> None:
        key = probe_key()
        await self.put_bytes(b"ok", key)
        await self.delete(key)

    async def delete(self, key: str) -> None:
        check_key(key)
        await obstore.delete_async(self._store, key)  # S3 answers a missing key with success too

    async def delete_prefix(self, prefix: str) -> None:
        # The trailing slash: `videos/abc` must never take `videos/abcd` with it.
        folder = check_key(prefix.rstrip("/")) + "/"
        keys = [
            meta["path"]
            async for batch in obstore.list(self._store, prefix=folder, chunk_size=_DELETE_BATCH)
            for meta in batch
            if meta["path"].startswith(folder)
        ]
        for i in range(0, len(keys), _DELETE_BATCH):
            await obstore.delete_async(self._store, keys[i : i + _DELETE_BATCH])

    # Reads -------------------------------------------------------------------------------------

    async def _first_segment(self, key: str, byte_range: ByteRange | None) -> tuple[int, int] | SuffixRange:
        """The `range` option of the first GET, which also brings the size: at most one segment."""
        if byte_range is None:
            return (0, SEGMENT_BYTES)
        if byte_range.suffix is not None:
            if 0 < byte_range.suffix <= SEGMENT_BYTES:
                return {"suffix": byte_range.suffix}
            # A zero suffix, or one longer than a segment: the start needs the size first.
            start, end = byte_range.resolve(await self._size_or_raise(key))
            return (start, min(end + 1, start + SEGMENT_BYTES))
        start = byte_range.first or 0
        if byte_range.last is not None and byte_range.last < start:
            raise RangeNotSatisfiable(await self._size_or_raise(key))
        stop = start + SEGMENT_BYTES
        return (start, stop if byte_range.last is None else min(stop, byte_range.last + 1))

    async def _size_or_raise(self, key: str) -> int:
        size = await self.size(key)
        if size is None:
            raise BlobNotFound(key)
        return size

    async def _segments(self, key: str, first: GetResult, end: int) -> AsyncGenerator[bytes, None]:
        """The bytes up to `end` (inclusive): `first`'s, then one ranged GET per segment. Each later GET
        is conditional on the first one's ETag, so a blob replaced mid-read fails the read instead of
        splicing two versions together."""
        etag = first.meta["e_tag"]
        result = first
        while True:
            async for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
                yield bytes(chunk)
            pos = result.range[1]
            if pos > end:
                return
            options: GetOptions = {"range": (pos, min(pos + SEGMENT_BYTES, end + 1))}
            if etag:
                options["if_match"] = etag
            result = await obstore.get_async(self._store, key, options=options)
            if result.range[0] != pos or result.range[1] <= pos:
                raise OSError(f"the store answered bytes {result.range} of {key!r}, not from {pos}")


async def _no_chunks() -> AsyncGenerator[bytes, None]:
    return
    yield  # an async generator that yields nothing


def _attributes(key: str) -> dict[str, str]:
    """Headers kept with the object, so that a presigned GET answers as our own stream does."""
    attributes = {"Content-Type": content_type(key)}
    name = download_name(key)
    if name:
        attributes["Content-Disposition"] = f'inline; filename="{name}"'
    return attributes


def _hash_file(src: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
