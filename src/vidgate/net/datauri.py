"""``data:image/<type>;base64,<data>`` URIs, the inline alternative to an image URL.

:func:`decode_data_uri` checks only the URI's form and size. Whether the bytes
really are an image is the magic-byte sniff's job: go through
:meth:`vidgate.net.fetch.SafeFetcher.fetch_bytes` (which accepts data: URIs for
image kinds) rather than trusting the declared type. :func:`check_image_data_uri`
makes both checks up front, so a create can refuse what the fetch would.
"""

from __future__ import annotations

import base64
import binascii
import re

from vidgate.media.sniff import sniff_image
from vidgate.net.policy import UrlRejected

__all__ = ["DataUriRejected", "DataUriTooLarge", "check_image_data_uri", "decode_data_uri", "is_data_uri"]

# A media type token per RFC 6838 (lower-cased before matching).
_IMAGE_TYPE = re.compile(r"image/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_EXAMPLE = "data:image/png;base64,iVBORw0KGgo..."


class DataUriRejected(UrlRejected):
    """A data: URI that is malformed, not base64 or not an image type."""

    code = "invalid_data_uri"


class DataUriTooLarge(DataUriRejected):
    """A data: URI whose decoded payload would exceed the byte limit (an HTTP 413 case)."""

    code = "image_too_large"


def is_data_uri(value: str) -> bool:
    """True if ``value`` uses the ``data:`` scheme (any case)."""
    return value[:5].lower() == "data:"


def _split(uri: str) -> tuple[str, str]:
    """``(media type, base64 payload)`` from the URI, or :class:`DataUriRejected`."""
    if not is_data_uri(uri):
        raise DataUriRejected(f"this is not a data: URI; expected the form {_EXAMPLE}")
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise DataUriRejected(f"the data: URI has no ',' before its data; expected the form {_EXAMPLE}")
    params = [p.strip() for p in header.split(";")]
    media_type = params[0].lower()
    if len(params) < 2 or params[-1].lower() != "base64":
        raise DataUriRejected(f"only base64 data: URIs are accepted (the form {_EXAMPLE})")
    if not _IMAGE_TYPE.fullmatch(media_type):
        shown = media_type or "none"
        raise DataUriRejected(
            f"the data: URI has media type {shown!r}; only image types (image/...) are accepted"
        )
    return media_type, payload


def decode_data_uri(uri: str, *, max_bytes: int) -> tuple[str, bytes]:
    """Decode ``data:image/<type>;base64,<data>`` into ``(media type, bytes)``.

    The decoded size is computed from the base64 length and checked against
    ``max_bytes`` BEFORE decoding, so an oversized URI costs no extra memory.
    Missing ``=`` padding is tolerated; whitespace, percent-escapes and the
    URL-safe alphabet are not. Raises :class:`DataUriTooLarge` or
    :class:`DataUriRejected` (both :class:`UrlRejected`) with a human reason.
    """
    media_type, payload = _split(uri)
    body = payload.rstrip("=")
    decoded_size = len(body) * 3 // 4
    if decoded_size > max_bytes:
        raise DataUriTooLarge(f"the data: URI image is {decoded_size} bytes; the limit is {max_bytes} bytes")
    padding = -len(body) % 4
    if len(payload) - len(body) > 2 or padding == 3:
        raise DataUriRejected("the data: URI's data is not valid base64 (wrong length or padding)")
    try:
        data = base64.b64decode(body + "=" * padding, validate=True)
    except (binascii.Error, ValueError):
        raise DataUriRejected(
            "the data: URI's data is not valid base64 (only A-Z, a-z, 0-9, '+', '/' and '=' are allowed)"
        ) from None
    if not data:
        raise DataUriRejected("the data: URI contains no data")
    return media_type, data


def check_image_data_uri(uri: str, *, max_bytes: int) -> None:
    """Raise :class:`DataUriRejected` unless ``uri`` decodes (as :func:`decode_data_uri` does) to
    bytes the sniff proves are an image we decode: what fetching the URI would decide, known now."""
    _declared, data = decode_data_uri(uri, max_bytes=max_bytes)
    if sniff_image(data[:64]) is None:
        raise DataUriRejected(
            "the data: URI's bytes are not an image of a supported type"
            " (PNG, JPEG, WebP, GIF, AVIF, BMP or TIFF)"
        )
