"""Media kinds: Content-Type allowlists and magic-byte sniffing."""

from __future__ import annotations

import pytest

from vidgate.media.sniff import sniff_image, sniff_mp4
from vidgate.net.fetch import IMAGE, VIDEO_MP4


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "image/avif"),
        (ftyp(b"mif1", b"avif", b"miaf"), "image/avif"),
        (ftyp(b"heic", b"mif1", b"heic"), None),  # HEIC: recognised, refused (no decoder here)
        (ftyp(b"mif1", b"mif1"), None),
        (b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00", "image/bmp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
    ],
)
def test_image_formats_are_recognised(head: bytes, expected: str) -> None:
    assert sniff_image(head) == expected
    assert sniff_mp4(head) is None


@pytest.mark.parametrize(
    "head",
    [
        b"<!DOCTYPE html><html><body>secret</body></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"<svg onload=alert(1)>",
        b"BM is also how this sentence starts",
        b"%PDF-1.7\n",
        b"",
        b"\x89PN",
        ftyp(b"isom", b"isom", b"avc1"),
    ],
)
def test_non_images_are_not(head: bytes) -> None:
    assert sniff_image(head) is None


@pytest.mark.parametrize(
    "head",
    [
        ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"),
        ftyp(b"mp42", b"mp42", b"isom"),
        ftyp(b"M4V ", b"M4V "),
    ],
)
def test_mp4_is_recognised(head: bytes) -> None:
    assert sniff_mp4(head) == "video/mp4"


@pytest.mark.parametrize(
    "head",
    [
        ftyp(b"avif", b"avif", b"mif1"),
        ftyp(b"qt  ", b"qt  "),
        b"\x00\x00\x00\x08moov",
        b"<html>",
        b"\x00\x00\x00\x04ftypisom",  # box size smaller than its own header
    ],
)
def test_non_mp4_is_not(head: bytes) -> None:
    assert sniff_mp4(head) is None


def test_header_allowlists() -> None:
    assert IMAGE.accepts_header("image/png")
    assert IMAGE.accepts_header("image/x-whatever")  # the bytes decide the rest
    assert not IMAGE.accepts_header("text/html")
    assert not IMAGE.accepts_header("")
    assert not IMAGE.accepts_header("image")
    assert VIDEO_MP4.accepts_header("video/mp4")
    assert VIDEO_MP4.accepts_header("application/octet-stream")
    assert not VIDEO_MP4.accepts_header("video/webm")
    assert not VIDEO_MP4.accepts_header("image/png")
    assert IMAGE.allow_data_uri and not VIDEO_MP4.allow_data_uri
