"""Streaming stored media with HTTP Range support, in constant memory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse

from vidgate.store.blobs import BlobNotFound, BlobStore, OpenedBlob
from vidgate.store.byte_ranges import ByteRange, RangeNotSatisfiable

__all__ = ["RangeNotSatisfiable", "blob_response", "parse_range", "parse_range_spec"]

# ASCII digits only: `\d` would also take other scripts' digits, which RFC 9110's DIGIT is not.
_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# A position of more digits than this is past the end of any file we store (and `int()` refuses
# numbers of thousands of digits), so it stands for "past the end" exactly as its real value would.
_MAX_POSITION_DIGITS = 18
_PAST_ANY_END = 10**_MAX_POSITION_DIGITS


def parse_range_spec(header: str | None) -> ByteRange | None:
    """The byte range asked for, before the size is known; None for the whole file.

    One range only: a multi-range request is answered with the whole file, which RFC 9110 allows.
    A malformed header is ignored the same way; a well-formed one past the end is a 416 once the
    store knows the size (`ByteRange.resolve`).
    """
    if not header or "," in header:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix: the last N bytes (all of them when N is more than the size)
        return ByteRange(suffix=_position(last))
    return ByteRange(first=_position(first), last=_position(last) if last else None)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range of a blob of `size` bytes asked for, or None for the whole file."""
    spec = parse_range_spec(header)
    return spec.resolve(size) if spec else None


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_POSITION_DIGITS else _PAST_ANY_END


async def blob_response(
    blobs: BlobStore,
    key: str,
    *,
    media_type: str,
    range_header: str | None,
    head: bool = False,
    filename: str | None = None,
) -> Response:
    """The blob, or the asked-for part of it, streamed in chunks. Size and body come from one `open`
    (one request to the store); a HEAD only asks the size. BlobNotFound is the caller's to answer."""
    headers = {"accept-ranges": "bytes", "cache-control": "private, max-age=3600"}
    if filename:
        headers["content-disposition"] = f'inline; filename="{filename}"'
    wanted = parse_range_spec(range_header)
    opened: OpenedBlob | None = None
    try:
        if head:
            size = await blobs.size(key)
            if size is None:
                raise BlobNotFound(key)
            start, end = wanted.resolve(size) if wanted else (0, size - 1)
        else:
            opened = await blobs.open(key, wanted)
            size, start, end = opened.size, opened.start, opened.end
    except RangeNotSatisfiable as exc:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{exc.size}"})
    status = 206 if wanted else 200
    if wanted:
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(max(0, end - start + 1))
    if opened is None or opened.length == 0:
        if opened is not None:
            await opened.aclose()
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(_drain(opened), status_code=status, headers=headers, media_type=media_type)


async def _drain(opened: OpenedBlob) -> AsyncIterator[bytes]:
    try:
        async for chunk in opened.chunks:
            yield chunk
    finally:
        await opened.aclose()  # also when the client goes away mid-body
