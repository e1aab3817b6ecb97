"""Image ingestion: sniffing, decoding untrusted bytes to upright opaque RGB, the pixel limit, cover_box."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, features

from vidgate.media.images import ImageRejected, cover_box, decode_image
from vidgate.media.sniff import sniff_image


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def noisy_rgb(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_1bit(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A 1-bit greyscale PNG built by hand, so a 100-megapixel image costs kilobytes to make.

    With `idat=None` the pixel data is real (all black, deflated row by row); otherwise `idat` is
    used as is (garbage proves a decoder never got as far as the pixels)."""
    if idat is None:
        deflate = zlib.compressobj(9)
        row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
        idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


FORMATS = [
    ("PNG", "image/png"),
    ("JPEG", "image/jpeg"),
    ("WEBP", "image/webp"),
    ("GIF", "image/gif"),
    ("BMP", "image/bmp"),
    ("TIFF", "image/tiff"),
    pytest.param(
        "AVIF",
        "image/avif",
        marks=pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF"),
    ),
]


@pytest.mark.parametrize(("fmt", "mime"), FORMATS)
def test_sniff_and_decode_each_supported_format(fmt: str, mime: str) -> None:
    data = encoded(noisy_rgb(), fmt)
    assert sniff_image(data) == mime
    image = decode_image(data)
    assert image.mode == "RGB"
    assert image.size == (64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html><body>not an image</body></html>",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",  # HEIC: same container as AVIF, no decoder
        b"%PDF-1.7\n",
    ],
)
def test_sniff_rejects_what_is_not_an_accepted_image(data: bytes) -> None:
    assert sniff_image(data) is None


def test_sniff_recognises_avif_by_compatible_brand() -> None:
    head = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf"
    assert sniff_image(head) == "image/avif"


def test_exif_orientation_is_applied() -> None:
    """Orientation 6 means "rotate 90 degrees clockwise to display": a 60x40 top-red/bottom-blue
    image becomes 40x60 with red on the right."""
    source = Image.new("RGB", (60, 40), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 60, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode_image(encoded(source, "JPEG", exif=exif.tobytes(), quality=95))
    assert image.size == (40, 60)
    right, left = image.getpixel((35, 30)), image.getpixel((4, 30))
    assert isinstance(right, tuple) and isinstance(left, tuple)
    assert right[0] > 200 and right[2] < 60
    assert left[2] > 200 and left[0] < 60


def test_alpha_is_composited_onto_the_background() -> None:
    source = Image.new("RGBA", (20, 10), (0, 255, 0, 255))
    source.paste((255, 0, 0, 0), (0, 0, 10, 10))  # fully transparent red: the red must not show
    data = encoded(source, "PNG")
    assert decode_image(data).getpixel((2, 5)) == (0, 0, 0)
    assert decode_image(data, background=(255, 255, 255)).getpixel((2, 5)) == (255, 255, 255)
    assert decode_image(data).getpixel((15, 5)) == (0, 255, 0)


def test_half_transparent_pixels_blend_with_the_background() -> None:
    data = encoded(Image.new("RGBA", (4, 4), (200, 100, 0, 128)), "PNG")
    pixel = decode_image(data, background=(0, 0, 255)).getpixel((1, 1))
    assert isinstance(pixel, tuple)
    assert pixel == pytest.approx((100, 50, 127), abs=2)


def test_greyscale_alpha_and_palette_transparency_are_flattened() -> None:
    la = Image.new("LA", (8, 8), (255, 0))
    assert decode_image(encoded(la, "PNG")).getpixel((3, 3)) == (0, 0, 0)
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    gif = encoded(palette, "GIF", transparency=1)
    assert decode_image(gif, background=(9, 9, 9)).getpixel((3, 3)) == (9, 9, 9)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3
    assert decode_image(data).getpixel((8, 8)) == (255, 0, 0)


def test_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    pixel = decode_image(data).getpixel((8, 8))
    assert isinstance(pixel, tuple)
    assert pixel == pytest.approx((255, 0, 0), abs=3)


def test_16_bit_png_is_scaled_not_clipped() -> None:
    """A full-range 16-bit ramp must average ~127.5 once scaled to 8 bits; Pillow's own
    convert("RGB") clips it to ~255."""
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    data = encoded(Image.fromarray(ramp), "PNG")
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I")  # the fixture really is a wide-integer image
    pixels = np.asarray(decode_image(data))
    assert pixels.mean() == pytest.approx(127.5, abs=1.0)
    assert pixels.min() == 0 and pixels.max() == 255


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    data = encoded(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    image = decode_image(data)
    assert image.mode == "RGB"
    pixel = image.getpixel((8, 8))
    assert isinstance(pixel, tuple)
    assert pixel == pytest.approx((255, 0, 0), abs=8)


def test_decompression_bomb_is_rejected_as_too_large() -> None:
    """10000x10000 = 100 MP: 12 KB on the wire. Pillow itself only *warns* below 2x its limit."""
    data = png_1bit(10_000, 10_000)
    assert len(data) < 50_000
    with pytest.raises(ImageRejected) as info:
        decode_image(data)
    assert info.value.code == "image_too_large"


def test_decoding_leaves_the_process_warning_filters_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decodes run on worker threads while the event loop's thread may be inside its own
    `catch_warnings` (FastAPI builds a route in one). A decode that swapped the process-wide filter list
    dropped that thread's filters: a warning FastAPI silences became a 500 in CI."""
    filters = warnings.filters
    same_list_while_decoding = []

    def open_and_look(*args: object, **kwargs: object) -> Image.Image:
        same_list_while_decoding.append(warnings.filters is filters)
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    real_open = Image.open
    monkeypatch.setattr(Image, "open", open_and_look)
    decode_image(encoded(noisy_rgb(), "PNG"))
    assert same_list_while_decoding == [True]


def test_a_bomb_is_refused_outside_the_tests_warning_filters(tmp_path: Path) -> None:
    """Where no filter makes warnings errors (a server), Pillow's bomb warning is still a refusal, with
    nothing written to stderr; 100 MP is over Pillow's limit and under the one asked for here."""
    (tmp_path / "bomb.png").write_bytes(png_1bit(10_000, 10_000))
    probe = (
        "import sys; from vidgate.media.images import ImageRejected, decode_image\n"
        "try:\n"
        "    decode_image(open(sys.argv[1], 'rb').read(), max_pixels=200_000_000)\n"
        "except ImageRejected as exc:\n"
        "    print(exc.code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "bomb.png")], capture_output=True, text=True, check=True
    )
    assert (done.stdout.strip(), done.stderr) == ("image_too_large", "")


def test_pixel_limit_is_checked_before_any_pixel_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """With garbage instead of pixel data (and Pillow's own check off), only our header check can
    answer image_too_large; decoding would have said invalid_image."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageRejected) as info:
        decode_image(png_1bit(10_000, 10_000, idat=b"garbage"))
    assert info.value.code == "image_too_large"


def test_pixel_limit_does_not_depend_on_pillow_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # someone switched Pillow's check off
    with pytest.raises(ImageRejected) as info:
        decode_image(png_1bit(10_000, 10_000))
    assert info.value.code == "image_too_large"
    with pytest.raises(ImageRejected) as info:
        decode_image(encoded(noisy_rgb(100, 100), "PNG"), max_pixels=9_999)
    assert info.value.code == "image_too_large"


def test_pillow_bomb_warning_is_an_error_even_when_warnings_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our limit is generous here, but Pillow's (lowered) limit warns: that must still reject."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageRejected) as info:
            decode_image(png_1bit(10_000, 10_000), max_pixels=200_000_000)
    assert info.value.code == "image_too_large"


def test_non_image_bytes_are_invalid() -> None:
    for data in (b"", b"hello world" * 10, b"\x89PNG\r\n\x1a\n" + b"\x00" * 20):
        with pytest.raises(ImageRejected) as info:
            decode_image(data)
        assert info.value.code == "invalid_image"
        assert isinstance(info.value, ValueError)


def test_truncated_png_is_invalid() -> None:
    data = encoded(noisy_rgb(200, 200), "PNG")
    with pytest.raises(ImageRejected) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.code == "invalid_image"


def test_formats_outside_the_allow_list_are_invalid() -> None:
    """Pillow can read PPM and ICO, but we do not accept them (nor EPS, PSD, ...)."""
    for fmt in ("PPM", "ICO"):
        with pytest.raises(ImageRejected) as info:
            decode_image(encoded(noisy_rgb(32, 32), fmt))
        assert info.value.code == "invalid_image"


def test_cover_box_examples() -> None:
    # Landscape source into a portrait frame: full height, centred horizontal slice.
    assert cover_box(2400, 1600, 720, 1280) == pytest.approx((750.0, 0.0, 1650.0, 1600.0))
    # Portrait source into a landscape frame: full width, centred vertical slice.
    assert cover_box(1600, 2400, 1920, 1080) == pytest.approx((0.0, 750.0, 1600.0, 1650.0))
    # Same aspect: the whole image.
    assert cover_box(1440, 2560, 720, 1280) == pytest.approx((0.0, 0.0, 1440.0, 2560.0))
    with pytest.raises(ValueError):
        cover_box(0, 10, 10, 10)


sizes = st.integers(min_value=1, max_value=10_000)


@given(sizes, sizes, sizes, sizes)
def test_cover_box_is_the_largest_centred_box_of_the_target_aspect(
    sw: int, sh: int, dw: int, dh: int
) -> None:
    x0, y0, x1, y1 = cover_box(sw, sh, dw, dh)
    eps = 1e-6 * max(sw, sh)
    assert -eps <= x0 <= x1 <= sw + eps and -eps <= y0 <= y1 <= sh + eps
    assert (x1 - x0) * dh == pytest.approx((y1 - y0) * dw, rel=1e-6)  # target aspect
    assert (x0 + x1) / 2 == pytest.approx(sw / 2) and (y0 + y1) / 2 == pytest.approx(sh / 2)  # centred
    assert x1 - x0 == pytest.approx(sw) or y1 - y0 == pytest.approx(sh)  # as large as possible
