"""Debian's Chromium for the browser tests (playwright drives it; it never downloads a browser of its own).
Missing, the test is skipped, unless VIDGATE_TEST_REQUIRE_BROWSER=1 (CI), which makes it fail."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_REQUIRED = os.environ.get("VIDGATE_TEST_REQUIRE_BROWSER") == "1"


def chromium_or_skip(test: str) -> str:
    """The Chromium executable for `test` (named in the skip or failure message)."""
    missing = [
        what
        for what, present in (
            ("the chromium browser", CHROMIUM is not None),
            ("the playwright package", importlib.util.find_spec("playwright") is not None),
        )
        if not present
    ]
    if missing:
        message = f"{test} needs {' and '.join(missing)}"
        if BROWSER_REQUIRED:
            pytest.fail(f"VIDGATE_TEST_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    assert CHROMIUM is not None
    return CHROMIUM
