"""The BlobStore contract: one suite, run against the local directory store and the S3 store (on a
moto server over loopback). Whatever the API or the worker relies on is asserted here for both."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.s3 import MotoS3
from vidgate.config import Settings
from vidgate.runtime import open_blob_store
from vidgate.store.blobs import BlobNotFound, BlobStore, LocalBlobStore, OpenedBlob, probe_key
from vidgate.store.byte_ranges import ByteRange, RangeNotSatisfiable

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
BIG = 12 * MiB  # over the S3 store's multipart part size and its read segment (8 MiB each)
BAD_KEYS = ["", "/abs", "../up", "a/../b", "a//b", ".hidden", "a/.hidden", "a/b/", "spa ce", "a\\b"]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """The store as `open_blob_store` builds it from Settings, as the gateway does."""
    overrides: dict[str, Any] = {}
    if request.param == "s3":
        moto: MotoS3 = request.getfixturevalue("moto_server")
        overrides = moto.settings(moto.new_bucket(), prefix="contract/root")
    store = open_blob_store(Settings(data_dir=tmp_path / "data", **overrides))
    assert isinstance(store, LocalBlobStore) == (request.param == "local")
    yield store


def payload(n: int) -> bytes:
    return os.urandom(n)


async def read_all(opened: OpenedBlob) -> bytes:
    try:
        return b"".join([chunk async for chunk in opened.chunks])
    finally:
        await opened.aclose()


async def test_put_bytes_read_back_with_size_and_sha256(store: BlobStore) -> None:
    data = payload(1000)
    info = await store.put_bytes(data, "inputs/t1/0.png")
    assert (info.key, info.size, info.sha256) == ("inputs/t1/0.png", 1000, hashlib.sha256(data).hexdigest())
    assert await store.read_bytes("inputs/t1/0.png") == data
    assert await store.size("inputs/t1/0.png") == 1000


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
async def test_put_file_copies_or_moves(store: BlobStore, tmp_path: Path, move: bool) -> None:
    src = tmp_path / "render.mp4"
    data = payload(5000)
    src.write_bytes(data)
    info = await store.put_file(src, "videos/t2/video.mp4", move=move)
    assert (info.size, info.sha256) == (5000, hashlib.sha256(data).hexdigest())
    assert src.exists() is not move
    dest = tmp_path / "copy.mp4"
    await store.copy_to_file("videos/t2/video.mp4", dest)
    assert dest.read_bytes() == data


async def test_a_file_larger_than_a_part_and_a_segment_round_trips(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "big.mp4"
    data = payload(BIG)
    src.write_bytes(data)
    info = await store.put_file(src, "videos/t3/video.mp4")
    assert (info.size, info.sha256) == (BIG, hashlib.sha256(data).hexdigest())
    opened = await store.open("videos/t3/video.mp4")
    assert (opened.size, opened.start, opened.end) == (BIG, 0, BIG - 1)
    sizes: list[int] = []
    body = bytearray()
    async for chunk in opened.chunks:
        sizes.append(len(chunk))
        body += chunk
    await opened.aclose()
    assert bytes(body) == data
    assert max(sizes) <= MiB, "chunks stay small whatever the blob's size (memory per client is bounded)"
    # A range across the 8 MiB segment boundary.
    start, end = 8 * MiB - 1000, 9 * MiB + 77
    opened = await store.open("videos/t3/video.mp4", ByteRange(first=start, last=end))
    assert (opened.size, opened.start, opened.end) == (BIG, start, end)
    assert await read_all(opened) == data[start : end + 1]
    # A suffix longer than a segment.
    opened = await store.open("videos/t3/video.mp4", ByteRange(suffix=9 * MiB))
    assert (opened.start, opened.end) == (BIG - 9 * MiB, BIG - 1)
    assert await read_all(opened) == data[-9 * MiB :]


@pytest.mark.parametrize(
    ("byte_range", "span"),
    [
        (None, (0, 999)),
        (ByteRange(first=100, last=199), (100, 199)),
        (ByteRange(first=900), (900, 999)),
        (ByteRange(first=990, last=5000), (990, 999)),  # a last position past the end is clipped
        (ByteRange(suffix=10), (990, 999)),
        (ByteRange(suffix=5000), (0, 999)),  # a suffix longer than the blob is all of it
        (ByteRange(first=999, last=999), (999, 999)),
    ],
    ids=["whole", "middle", "offset", "clipped", "suffix", "long-suffix", "last-byte"],
)
async def test_open_serves_the_span_asked_for(
    store: BlobStore, byte_range: ByteRange | None, span: tuple[int, int]
) -> None:
    data = payload(1000)
    await store.put_bytes(data, "videos/t4/video.mp4")
    opened = await store.open("videos/t4/video.mp4", byte_range)
    assert (opened.size, opened.start, opened.end) == (1000, *span)
    assert opened.length == span[1] - span[0] + 1
    assert await read_all(opened) == data[span[0] : span[1] + 1]


@pytest.mark.parametrize(
    "byte_range",
    [ByteRange(first=1000), ByteRange(first=5000, last=6000), ByteRange(first=10**18), ByteRange(suffix=0)],
    ids=["at-end", "past-end", "far-past-end", "zero-suffix"],
)
async def test_a_range_past_the_end_is_unsatisfiable_and_says_the_size(
    store: BlobStore, byte_range: ByteRange
) -> None:
    await store.put_bytes(payload(1000), "videos/t5/video.mp4")
    with pytest.raises(RangeNotSatisfiable) as caught:
        await store.open("videos/t5/video.mp4", byte_range)
    assert caught.value.size == 1000


async def test_a_range_that_ends_before_it_starts_is_unsatisfiable(store: BlobStore) -> None:
    await store.put_bytes(payload(100), "videos/t5b/video.mp4")
    with pytest.raises(RangeNotSatisfiable) as caught:
        await store.open("videos/t5b/video.mp4", ByteRange(first=50, last=49))
    assert caught.value.size == 100


async def test_an_empty_blob(store: BlobStore, tmp_path: Path) -> None:
    info = await store.put_bytes(b"", "videos/t6/video.mp4")
    assert (info.size, info.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await store.size("videos/t6/video.mp4") == 0
    opened = await store.open("videos/t6/video.mp4")
    assert (opened.size, opened.length) == (0, 0)
    assert await read_all(opened) == b""
    assert await store.read_bytes("videos/t6/video.mp4") == b""
    for byte_range in (ByteRange(first=0), ByteRange(suffix=1)):
        with pytest.raises(RangeNotSatisfiable) as caught:
            await store.open("videos/t6/video.mp4", byte_range)
        assert caught.value.size == 0
    empty = tmp_path / "empty"
    await store.copy_to_file("videos/t6/video.mp4", empty)
    assert empty.read_bytes() == b""


async def test_a_missing_blob(store: BlobStore, tmp_path: Path) -> None:
    key = "videos/nothing/video.mp4"
    assert await store.size(key) is None
    with pytest.raises(BlobNotFound):
        await store.open(key)
    with pytest.raises(BlobNotFound):
        await store.open(key, ByteRange(first=10))
    with pytest.raises(BlobNotFound):
        await store.read_bytes(key)
    with pytest.raises(BlobNotFound):
        await store.copy_to_file(key, tmp_path / "x")
    await store.delete(key)  # deleting what is not there is not an error
    await store.delete_prefix("videos/nothing")


async def test_delete(store: BlobStore) -> None:
    await store.put_bytes(b"x", "videos/t7/video.mp4")
    await store.delete("videos/t7/video.mp4")
    assert await store.size("videos/t7/video.mp4") is None


@pytest.mark.parametrize("prefix", ["videos/ab", "videos/ab/"])
async def test_delete_prefix_takes_that_folder_only(store: BlobStore, prefix: str) -> None:
    keys = ["videos/ab/video.mp4", "videos/ab/thumbnail.webp", "videos/abc/video.mp4", "videos/a/video.mp4"]
    for key in keys:
        await store.put_bytes(key.encode(), key)
    await store.delete_prefix(prefix)
    assert [await store.size(k) is not None for k in keys] == [False, False, True, True]
    assert await store.read_bytes("videos/abc/video.mp4") == b"videos/abc/video.mp4"


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_every_operation_refuses_a_bad_key(store: BlobStore, key: str, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    calls = [
        store.put_bytes(b"x", key),
        store.put_file(src, key),
        store.size(key),
        store.read_bytes(key),
        store.copy_to_file(key, tmp_path / "out"),
        store.open(key),
        store.presign(key, "GET", 60),
        store.delete(key),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid blob key"):
            await call
    if key != "a/b/":  # a prefix may end in a slash; the folder it names is `a/b`
        with pytest.raises(ValueError, match="invalid blob key"):
            await store.delete_prefix(key)
    assert src.exists()


async def test_a_put_replaces_what_was_there(store: BlobStore) -> None:
    await store.put_bytes(b"first version, longer", "videos/t8/video.mp4")
    await store.put_bytes(b"second", "videos/t8/video.mp4")
    assert await store.read_bytes("videos/t8/video.mp4") == b"second"
    assert await store.size("videos/t8/video.mp4") == 6


async def test_closing_an_opened_blob_without_reading_it(store: BlobStore) -> None:
    """A HEAD, a client gone before the body: nothing stays open (pytest fails on a leaked file)."""
    await store.put_bytes(payload(10), "videos/t9/video.mp4")
    opened = await store.open("videos/t9/video.mp4")
    await opened.aclose()
    opened = await store.open("videos/t9/video.mp4")
    assert len(await anext(opened.chunks)) == 10
    await opened.aclose()


async def test_probe_writes_and_deletes_its_own_key(store: BlobStore) -> None:
    assert probe_key().startswith("readyz/") and probe_key().endswith(f"-{os.getpid()}")
    await store.probe()
    await store.probe()
    assert await store.size(probe_key()) is None


async def test_presign(store: BlobStore) -> None:
    data = payload(3000)
    await store.put_bytes(data, "videos/t10/video.mp4")
    url = await store.presign("videos/t10/video.mp4", "GET", 60)
    if isinstance(store, LocalBlobStore):
        assert url is None  # local files are only served by the gateway
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        got = await client.get(url)
        assert got.status_code == 200
        assert got.content == data
        # Stored with the object at upload, so the bucket answers as our own stream does.
        assert got.headers["content-type"] == "video/mp4"
        assert got.headers["content-disposition"] == 'inline; filename="t10-video.mp4"'
        head_url = await store.presign("videos/t10/video.mp4", "HEAD", 60)
        assert head_url is not None and head_url != url
        head = await client.head(head_url)
        assert (head.status_code, head.headers["content-length"]) == (200, "3000")


async def test_presign_refuses_lifetimes_sigv4_does_not_allow(store: BlobStore) -> None:
    if isinstance(store, LocalBlobStore):
        pytest.skip("local storage never presigns")
    for seconds in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="7 days"):
            await store.presign("videos/t11/video.mp4", "GET", seconds)


async def test_a_blob_replaced_mid_read_fails_the_read(store: BlobStore, tmp_path: Path) -> None:
    """S3 reads in segments; later ones are conditional on the first one's ETag, so a replaced blob
    is never served as a splice of two versions. (A local read keeps the file it opened.)"""
    src = tmp_path / "big.mp4"
    data = payload(BIG)
    src.write_bytes(data)
    await store.put_file(src, "videos/t12/video.mp4")
    opened = await store.open("videos/t12/video.mp4")
    body = bytearray(await anext(opened.chunks))
    await store.put_bytes(payload(BIG), "videos/t12/video.mp4")
    try:
        if isinstance(store, LocalBlobStore):
            body += b"".join([chunk async for chunk in opened.chunks])
            assert bytes(body) == data
        else:
            with pytest.raises(Exception, match=r"(?i)precondition"):
                async for chunk in opened.chunks:
                    body += chunk
            assert len(body) <= 8 * 1024 * 1024
    finally:
        await opened.aclose()
