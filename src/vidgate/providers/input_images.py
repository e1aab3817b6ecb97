"""Turning a task's stored input images into what an upstream takes: a file of exactly the video's
size (OpenAI refuses a reference whose size differs from `size`), a URL, or a data: URI."""

from __future__ import annotations

import base64
import io

import anyio
from PIL import Image, ImageOps

from vidgate.providers.base import InputImage
from vidgate.store.blobs import BlobStore


async def reference_png(blobs: BlobStore, image: InputImage, width: int, height: int) -> bytes:
    """The image cropped to cover `width` x `height` exactly (centred, no distortion), as PNG."""
    data = await blobs.read_bytes(image.key)
    return await anyio.to_thread.run_sync(_fit_png, data, width, height)


async def image_reference(blobs: BlobStore, image: InputImage, mode: str, width: int, height: int) -> str:
    """`url` mode: the client's own http(s) URL where it sent one (the upstream fetches it), else a
    data: URI of the stored image scaled to fit within the video's size."""
    if mode == "url" and image.source.lower().startswith(("http://", "https://")):
        return image.source
    data = await blobs.read_bytes(image.key)
    png = await anyio.to_thread.run_sync(_bounded_png, data, width, height)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _fit_png(data: bytes, width: int, height: int) -> bytes:
    with Image.open(io.BytesIO(data)) as source:
        fitted = ImageOps.fit(source.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS)
    return _png(fitted)


def _bounded_png(data: bytes, width: int, height: int) -> bytes:
    with Image.open(io.BytesIO(data)) as source:
        image = source.convert("RGB")
    side = max(width, height)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)  # never larger than the video needs
    return _png(image)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
