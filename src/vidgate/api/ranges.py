"""Streaming stored media with HTTP Range support, in constant memory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse

from vidgate.store.blobs import BlobStore

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


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
    if first == "":  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header)
    return start, end


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
