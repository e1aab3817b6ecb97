"""Image ingestion: sniff, decode and normalise untrusted image bytes to RGB.

Every image a client sends (URL or data URI) goes through `decode_image` before an engine sees it.
The bytes are untrusted, so decoding is defensive:

- Only the formats we advertise are tried (Pillow otherwise probes ~40 plugins, EPS among them,
  which would shell out to Ghostscript).
- The pixel count is checked right after the lazy `Image.open`, before any pixel is decoded, and
  Pillow's `DecompressionBombWarning` is promoted to an error locally: a 10000x10000 1-bit PNG is
  only 12 KB on the wire but 100 MP once decoded.
- Whatever the mode (palette, CMYK, 16-bit, alpha, animated), the result is a plain RGB image with
  the EXIF orientation applied, so engines never need to care.
"""

from __future__ import annotations

import io
import warnings
from typing import Final, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "ImageRejected",
    "ImageRejectedCode",
    "cover_box",
    "decode_image",
]

ImageRejectedCode = Literal["invalid_image", "image_too_large"]

DEFAULT_MAX_PIXELS: Final = 40_000_000

# Pillow plugin names we are willing to parse; the keys of `_MIME_BY_FORMAT` must match Pillow's names.
_MIME_BY_FORMAT: Final = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
SUPPORTED_FORMATS: Final = tuple(_MIME_BY_FORMAT)

# Every image decoded here is untrusted: Pillow's warning about one over Image.MAX_IMAGE_PIXELS is an
# error (no stray stderr line), set once for the process at import, and `decode_image` checks that limit
# itself as well. Not a `warnings.catch_warnings()` around each decode:
# decodes run on worker threads, and before Python 3.14 that swaps the one process-wide filter list,
# dropping what another thread set meanwhile (in one CI run FastAPI's own silencing of a pydantic
# warning while it built a route, which the tests' filterwarnings=error turned into a 500).
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

_ALPHA_MODES: Final = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_INT_MODES: Final = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


class ImageRejected(ValueError):
    """The bytes are not an image we accept.

    `code` is `"invalid_image"` (not an image, truncated, unsupported format) or
    `"image_too_large"` (more pixels than allowed); the worker turns it into the task's error code.
    """

    def __init__(self, code: ImageRejectedCode, message: str) -> None:
        super().__init__(message)
        self.code: ImageRejectedCode = code
        self.message = message


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    """Decode untrusted image bytes to an RGB image, upright, opaque, first frame only.

    Raises `ImageRejected("image_too_large")` when width*height exceeds `max_pixels` (checked before
    any pixel is decoded) and `ImageRejected("invalid_image")` for anything that is not a complete
    image in one of `SUPPORTED_FORMATS`. Transparent pixels are composited onto `background`
    (black by default, the colour of a letterbox in a video).
    """
    if not data:
        raise ImageRejected("invalid_image", "the image is empty")
    try:
        im = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageRejected("image_too_large", f"the image has too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("invalid_image", "the data is not a supported image") from exc
    with im:
        # Pillow's own limit too, when it is lower: its warning is only as strong as the process's
        # warning filters, which whoever embeds vidgate may set to ignore.
        _check_pixels(im, min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels))
        return _normalise(im, background)


def _check_pixels(im: Image.Image, max_pixels: int) -> None:
    """Reject by header size; `Image.open` is lazy, so no pixel has been decoded yet."""
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageRejected("invalid_image", "the image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            "image_too_large",
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )


def _normalise(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Load the first frame, apply EXIF orientation, and flatten whatever mode it has to RGB.

    `ImageOps.exif_transpose` returns a new image, detached from the file our caller closes.
    """
    try:
        # Pillow opens animations (GIF, WebP, APNG) on frame 0; asking for n_frames would scan the
        # whole file, so we simply never seek.
        im.load()
        upright = ImageOps.exif_transpose(im)
        return _to_rgb(upright, background)
    except ImageRejected:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageRejected("image_too_large", f"the image has too many pixels ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as exc:
        # Truncated files surface as OSError("image file is truncated") or EOFError here;
        # malformed EXIF as SyntaxError/ValueError/KeyError.
        raise ImageRejected("invalid_image", "the image data is truncated or corrupt") from exc


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if im.mode in _WIDE_INT_MODES:
        # convert("RGB") clips 16-bit samples to 255 instead of scaling them (mean 254.5 for a
        # mid-grey 16-bit PNG), so scale by hand: the high byte of a 16-bit sample.
        wide = np.asarray(im).astype(np.int64)
        eight = (np.clip(wide, 0, 0xFFFF) >> 8).astype(np.uint8)
        return Image.fromarray(eight).convert("RGB")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return flat
    if im.mode == "RGB":
        # exif_transpose already returned a detached copy; no need for another 3 bytes/pixel.
        return im
    return im.convert("RGB")


def cover_box(src_w: float, src_h: float, dst_w: float, dst_h: float) -> tuple[float, float, float, float]:
    """The centred crop box (x0, y0, x1, y1) of a `src_w` x `src_h` image that has the aspect ratio of
    `dst_w` x `dst_h` and is as large as possible ("cover" fit, as CSS `object-fit: cover`).

    Floats on purpose: Pillow's `resize(..., box=...)` resamples fractional boxes exactly, and rounding
    the box to whole pixels is what makes cheap Ken Burns effects shimmer.
    """
    if min(src_w, src_h, dst_w, dst_h) <= 0:
        raise ValueError("cover_box needs positive sizes")
    target = dst_w / dst_h
    if src_w / src_h > target:
        box_w, box_h = src_h * target, float(src_h)
    else:
        box_w, box_h = float(src_w), src_w / target
    x0 = (src_w - box_w) / 2
    y0 = (src_h - box_h) / 2
    return (x0, y0, x0 + box_w, y0 + box_h)
