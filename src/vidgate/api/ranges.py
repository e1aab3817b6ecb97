"""Streaming stored media with HTTP Range support, in constant memory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse

from vidgate.store.blobs import BlobStore

# ASCII digits only: `\d` would also take other scripts' digits, which RFC 9110's DIGIT is not.
_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# A position of more digits than this is past the end of any file we store (and `int()` refuses
# numbers of thousands of digits), so it stands for "past the end" exactly as its real value would.
_MAX_POSITION_DIGITS = 18
_PAST_ANY_END = 10**_MAX_POSITION_DIGITS


class RangeNotSatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked for, or None for the whole file.

    One range only: a multi-range request is answered with the whole file, which RFC 9110 allows.
    A malformed header is ignored the same way; a well-formed one past the end is a 416.
    """
    if not header or "," in header:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix: the last N bytes (all of them when N is more than the size)
        length = _position(last)
        if length == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - length), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header)
    return start, end


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_POSITION_DIGITS else _PAST_ANY_END


def blob_response(
    blobs: BlobStore,
    key: str,
    size: int,
    *,
    media_type: str,
    range_header: str | None,
    head: bool = False,
    filename: str | None = None,
) -> Response:
    headers = {"accept-ranges": "bytes", "cache-control": "private, max-age=3600"}
    if filename:
        headers["content-disposition"] = f'inline; filename="{filename}"'
    try:
        wanted = parse_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    start, end = wanted if wanted else (0, size - 1)
    status = 206 if wanted else 200
    if wanted:
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    headers["content-length"] = str(end - start + 1 if size else 0)
    if head or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in blobs.open_range(key, start, end):
            yield chunk

    return StreamingResponse(body(), status_code=status, headers=headers, media_type=media_type)
