"""The README's curl walk-through, pasted as it stands into a shell, against a fresh `vidgate serve`
(SQLite, a new data dir, the built-in engine): it ends with a real MP4 in boat.mp4."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import Deployment
from vidgate.media.probe import probe_mp4

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"


def walkthrough_script() -> str:
    text = README.read_text()
    section = text[text.index("## Walk-through with curl") :]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start : section.index("```", start)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_readme_walkthrough_works_when_pasted(tmp_path: Path) -> None:
    config = tmp_path / "vidgate.toml"
    config.write_text("embedded_worker = true\n")
    dep = Deployment(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'data' / 'vidgate.db'}", config)
    # Only what a machine other than the README's differs in: the port, and the venv's location.
    script = walkthrough_script().replace("http://127.0.0.1:8000", dep.base_url)
    script = script.replace(".venv/bin/vidgate", f"{sys.executable} -m vidgate")
    workdir = tmp_path / "user"
    workdir.mkdir()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        dep.serve()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=dep.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    assert '"status":"completed"' in (workdir / "result.json").read_text()
    probe = probe_mp4(workdir / "boat.mp4")
    assert (probe.width, probe.height) == (1280, 720) and round(probe.seconds) == 10


def sdk_example() -> str:
    text = README.read_text()
    start = text.index("```python\nfrom vidgate.client import Client") + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readme_sdk_example_works_when_pasted(tmp_path: Path) -> None:
    config = tmp_path / "vidgate.toml"
    config.write_text("embedded_worker = true\n")
    dep = Deployment(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'data' / 'vidgate.db'}", config)
    workdir = tmp_path / "user"
    workdir.mkdir()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        dep.serve()
        script = f"KEY = {dep.new_key()!r}\n" + sdk_example().replace("http://127.0.0.1:8000", dep.base_url)
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=workdir,
            env=dep.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "completed 100", done.stdout
    probe = probe_mp4(workdir / "boat.mp4")
    assert (probe.width, probe.height) == (1280, 720) and round(probe.seconds) == 10
