"""The prompt card's font: which one is used, and which of a prompt's characters it cannot draw.

Most relay clients send Chinese prompts, and Pillow's bundled font draws Latin only: without a CJK
font the card shows boxes. The card uses, in order: a font named in the channel's options, an
installed font that can draw CJK (the system's Noto Sans CJK and friends, or the one `pip install
'vidgate[cjk]'` brings), any other installed font, Pillow's own. Whatever it uses, a task whose prompt
had characters the font lacks says so in its detail, and a worker without a CJK font warns at start.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Final

from PIL import ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

INSTALL_HINT: Final = (
    "install a CJK font (Debian: apt-get install fonts-noto-cjk) or pip install 'vidgate[cjk]'"
)
# One common character each of Chinese, Japanese kana and Hangul.
_CJK_PROBE: Final = "中あ한"
# Installed fonts tried, widest script coverage first (Debian/Ubuntu, Fedora, Arch, macOS).
SYSTEM_FONTS: Final = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
# The `cjk` extra: Noto Sans CJK packaged on PyPI (module, file inside it).
_PACKAGED_FONT: Final = ("cvttf_NotoSansCJK_Regular", "NotoSansCJKtc-Regular.otf")
# A code point no font has a glyph for (plane 16 private use): what "missing" looks like.
_NEVER_DRAWN: Final = "\U0010fffd"
_PROBE_SIZE: Final = 32


def load_font(path: str | None, size: int) -> Font:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


@functools.cache
def default_font_path() -> str | None:
    """The font the card uses when the channel names none: the first that can draw CJK, else the
    first installed at all, else None (Pillow's own)."""
    installed = [path for path in _candidates() if os.path.isfile(path)]
    return next((path for path in installed if cjk_capable(path)), installed[0] if installed else None)


def cjk_capable(font_path: str | None) -> bool:
    """Whether the font draws Chinese, Japanese kana and Hangul."""
    return not missing_glyphs(_CJK_PROBE, font_path)


def missing_glyphs(text: str, font_path: str | None) -> list[str]:
    """The distinct characters of `text` that the font has no glyph for, in order of appearance
    (spaces, controls and other invisible characters are never counted)."""
    font = _probe_font(font_path)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow built without FreeType: ASCII only
        return [ch for ch in dict.fromkeys(text) if _visible(ch) and not ch.isascii()]
    missing_mask = _mask(font, _NEVER_DRAWN)
    return [ch for ch in dict.fromkeys(text) if _visible(ch) and _mask(font, ch) == missing_mask]


def card_font_warning(text: str, font_path: str | None) -> str | None:
    """What a task's detail says when its card could not draw some of the prompt, else None."""
    missing = missing_glyphs(text, font_path)
    if not missing:
        return None
    sample = "".join(missing[:8])
    return (
        f"the prompt card's font cannot draw {len(missing)} of the prompt's characters ({sample}), "
        f"shown as boxes: {INSTALL_HINT}"
    )


def check_font_file(path: str) -> str:
    """`path` if it is a font FreeType can load (a channel option is checked at start)."""
    try:
        ImageFont.truetype(path, _PROBE_SIZE)
    except OSError as exc:
        raise ValueError(f"{path!r} is not a font file that can be loaded: {exc}") from exc
    return path


def _candidates() -> list[str]:
    return [*SYSTEM_FONTS[:-1], *_packaged_font(), *_fontconfig_cjk_font(), SYSTEM_FONTS[-1]]


def _packaged_font() -> list[str]:
    module, name = _PACKAGED_FONT
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [str(Path(location) / name) for location in spec.submodule_search_locations]


def _fontconfig_cjk_font() -> list[str]:
    """What fontconfig would pick for Chinese text, where fontconfig is installed."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return []
    try:
        found = subprocess.run(
            [fc_match, "--format=%{file}", "sans:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    return [found] if found else []


@functools.cache
def _probe_font(path: str | None) -> Font:
    return load_font(path, _PROBE_SIZE)


def _mask(font: ImageFont.FreeTypeFont, ch: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(ch)
    return mask.size, bytes(mask)


def _visible(ch: str) -> bool:
    return not ch.isspace() and unicodedata.category(ch)[0] not in "CZM"
