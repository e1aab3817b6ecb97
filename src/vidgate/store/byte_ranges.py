"""A byte range asked for before the blob's size is known, and what it means once the size is known.

The HTTP layer parses the Range header into a `ByteRange`; a BlobStore resolves it against the size it
learns from the same request that starts the body (fstat for a local file, the GET's metadata on S3).
"""

from __future__ import annotations

from dataclasses import dataclass


class RangeNotSatisfiable(ValueError):
    """The range starts past the end (or asks for no bytes); `size` is for `content-range: bytes */size`."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for a blob of {size} bytes")
        self.size = size


@dataclass(frozen=True, slots=True)
class ByteRange:
    """`first..last` (inclusive), `first..` (last is None), or the last `suffix` bytes (first is None)."""

    first: int | None = None
    last: int | None = None
    suffix: int | None = None

    def resolve(self, size: int) -> tuple[int, int]:
        """The inclusive (start, end) served from a blob of `size` bytes, as RFC 9110 says.

        A last position past the end is clipped and a suffix longer than the blob is all of it; a
        start at or past the end, a last before the first, or a suffix of zero bytes (or of an empty
        blob, which has no last byte) cannot be satisfied."""
        if self.suffix is not None:
            if self.suffix == 0 or size == 0:
                raise RangeNotSatisfiable(size)
            return max(0, size - self.suffix), size - 1
        start = self.first or 0
        end = size - 1 if self.last is None else min(self.last, size - 1)
        if start >= size or end < start:
            raise RangeNotSatisfiable(size)
        return start, end
