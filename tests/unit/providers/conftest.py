"""Fixtures the adapters' unit tests share (the helpers themselves are in `adapter_support`)."""

from __future__ import annotations

import pytest

from tests.unit.providers.adapter_support import Clock


@pytest.fixture
def clock() -> Clock:
    """The hand-driven clock a test's fake upstream runs on, at T0 until the test moves it."""
    return Clock()
