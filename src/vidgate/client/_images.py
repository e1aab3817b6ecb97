"""Input images as the server takes them: URLs pass through; local files and bytes become an upload
(one image on the OpenAI route) or `data:` URIs (inside the unified route's JSON body)."""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ImageInput = str | os.PathLike[str] | bytes

_URL_PREFIXES = ("http://", "https://", "data:")
# The formats the server accepts, by their first bytes (the server checks again).
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF8", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)


@dataclass(frozen=True)
class LocalImage:
    name: str
    data: bytes
    mime: str

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


Image = str | LocalImage  # a URL (or data: URI) to send as is, or bytes to send


def sniff_mime(data: bytes, name: str = "") -> str:
    for magic, offset, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    guessed, _ = mimetypes.guess_type(name)
    # Anything else still goes up as an image; the server names the field it refuses (invalid_image).
    return guessed if guessed and guessed.startswith("image/") else "image/png"


def is_url(value: str) -> bool:
    return value[:8].lower().startswith(_URL_PREFIXES)


def load(item: ImageInput, index: int, *, param: str | None = None) -> Image:
    """A str that starts with http://, https:// or data: is a URL; any other str, or a path, is a
    local file (read now, so a missing file is an error before anything is sent). `param` names the
    argument in errors (default `images[index]`)."""
    name = param or f"images[{index}]"
    if isinstance(item, bytes):
        return LocalImage(param or f"image{index}", item, sniff_mime(item))
    if isinstance(item, str) and is_url(item):
        return item
    if not isinstance(item, (str, os.PathLike)):
        raise TypeError(f"{name} must be a URL, a path or bytes, not {type(item).__name__}")
    path = Path(item)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror or exc}") from exc
    return LocalImage(path.name, data, sniff_mime(data, path.name))


def load_all(items: Sequence[ImageInput] | None) -> list[Image]:
    if isinstance(items, (str, bytes, os.PathLike)):
        raise TypeError("images must be a list (of URLs, paths or bytes), not a single value")
    return [load(item, i) for i, item in enumerate(items or ())]
