"""Magic-byte sniffing: what the first bytes of a body prove it is (images we decode, MP4 videos).

Shared by the fetcher (to refuse a wrong body early) and by uploads; `decode_image` still decides
whether the rest of an image is valid.
"""

from __future__ import annotations

_AVIF_BRANDS = frozenset({"avif", "avis"})
_HEIC_BRANDS = frozenset({"heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"})
_HEIF_BRANDS = frozenset({"mif1", "msf1"})
_IMAGE_BRANDS = _AVIF_BRANDS | _HEIC_BRANDS | _HEIF_BRANDS
_MP4_BRANDS = frozenset(
    {"isom", "iso2", "iso3", "iso4", "iso5", "iso6", "iso7", "iso8", "iso9"}
    | {"mp41", "mp42", "mp71", "avc1", "dash", "mmp4", "msnv", "M4V ", "M4VP", "f4v "}
)


def _ftyp_brands(head: bytes) -> tuple[str, frozenset[str]] | None:
    """``(major brand, all brands)`` of an ISO-BMFF ``ftyp`` box at offset 0, or None."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    if size < 16 and size != 0:
        return None
    end = len(head) if size == 0 else min(size, len(head))
    major = head[8:12].decode("latin-1")
    compatible = {head[i : i + 4].decode("latin-1") for i in range(16, end - 3, 4)}
    return major, frozenset({major} | compatible)


def sniff_image(head: bytes) -> str | None:
    """The image type the leading bytes prove (PNG, JPEG, GIF, WebP, AVIF, BMP, TIFF), or None.

    Exactly the formats `decode_image` accepts, so a fetch can refuse a wrong body before buffering
    or decoding it. SVG is deliberately not recognised: it is XML that can script and fetch.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    # "BM" alone would match text; the 4 reserved header bytes are zero in practice.
    if head[:2] == b"BM" and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    brands = _ftyp_brands(head)
    if brands is not None and brands[1] & _AVIF_BRANDS:
        return "image/avif"
    # HEIC/HEIF are recognised as images only to be refused: Pillow cannot decode them here.
    return None


def sniff_mp4(head: bytes) -> str | None:
    """``"video/mp4"`` if the bytes start with an MP4 ``ftyp`` box (not an AVIF/HEIF image), else None."""
    brands = _ftyp_brands(head)
    if brands is None:
        return None
    major, every = brands
    if major in _IMAGE_BRANDS or not every & _MP4_BRANDS:
        return None
    return "video/mp4"
