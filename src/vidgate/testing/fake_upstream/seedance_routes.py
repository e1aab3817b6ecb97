"""The seedance vendor dialect of the fake upstream (being written: no routes yet)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from vidgate.testing.fake_upstream.state import FakeState

__all__ = ["seedance_routes"]


def seedance_routes(state: FakeState) -> list[BaseRoute]:
    return []
