"""`vidgate serve` on a database with no usable key says how to make one; with a key it says nothing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.e2e.processes import Deployment

pytestmark = pytest.mark.slow

HINT = "no API key yet: create one with  vidgate keys create --name NAME"


def test_serve_prints_the_keys_create_hint_until_a_key_exists(tmp_path: Path) -> None:
    config = tmp_path / "vidgate.toml"
    config.write_text("embedded_worker = false\n")
    dep = Deployment(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}", config)
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        dep.serve()
        assert dep.log("serve").count(HINT) == 1
        dep.stop_all()

        dep.new_key()
        dep.serve()
        assert dep.log("serve").count(HINT) == 1  # the log is appended to: still only the first start's
