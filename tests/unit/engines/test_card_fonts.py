"""The prompt card's font: glyph coverage, the warning a task gets, the channel option's check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vidgate.engines import card_fonts
from vidgate.engines.card_fonts import card_font_warning, check_font_file, cjk_capable, missing_glyphs

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
needs_dejavu = pytest.mark.skipif(not os.path.isfile(DEJAVU), reason="DejaVu Sans is not installed")


def test_pillows_own_font_lacks_cjk_and_cyrillic_but_draws_latin() -> None:
    assert missing_glyphs("a cat, 一只猫 Кот", None) == ["一", "只", "猫", "К", "о", "т"]
    assert missing_glyphs("a cat on a sofa!", None) == []
    assert not cjk_capable(None)


@needs_dejavu
def test_a_latin_font_draws_cyrillic_and_accents_and_lacks_cjk() -> None:
    assert missing_glyphs("Кот café 一只猫 猫", DEJAVU) == ["一", "只", "猫"]  # each character once
    assert missing_glyphs(" \t\n\u200b", DEJAVU) == []  # invisible characters never count


def test_the_warning_names_the_characters_and_how_to_fix_it() -> None:
    warning = card_font_warning("一只猫 a cat", None)
    assert warning is not None
    assert "3 of the prompt's characters (一只猫)" in warning and "fonts-noto-cjk" in warning
    assert card_font_warning("a cat", None) is None


def test_the_default_font_is_the_first_that_draws_cjk(monkeypatch: pytest.MonkeyPatch) -> None:
    cjk = next((p for p in card_fonts._candidates() if os.path.isfile(p) and cjk_capable(p)), None)
    if cjk is None:
        pytest.skip("no CJK font is installed here")
    monkeypatch.setattr(card_fonts, "_candidates", lambda: [DEJAVU, cjk])
    card_fonts.default_font_path.cache_clear()
    try:
        assert card_fonts.default_font_path() == cjk
    finally:
        card_fonts.default_font_path.cache_clear()


def test_without_a_cjk_font_the_default_is_the_first_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(card_fonts, "_candidates", lambda: ["/nonexistent/font.ttf", DEJAVU])
    card_fonts.default_font_path.cache_clear()
    try:
        assert card_fonts.default_font_path() == (DEJAVU if os.path.isfile(DEJAVU) else None)
    finally:
        card_fonts.default_font_path.cache_clear()


def test_a_font_option_that_is_not_a_font_is_refused(tmp_path: Path) -> None:
    not_a_font = tmp_path / "font.ttf"
    not_a_font.write_text("hello")
    with pytest.raises(ValueError, match="not a font file"):
        check_font_file(str(not_a_font))
    with pytest.raises(ValueError, match="not a font file"):
        check_font_file(str(tmp_path / "missing.ttf"))
