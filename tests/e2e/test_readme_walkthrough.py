"""The README's walk-through, pasted as it stands into one shell in an empty folder, against a fresh
`vidgate serve` (SQLite, a new data dir, the built-in engine): the curl steps, installing the `openai`
SDK, the `openai` example, the `vidgate` command and vidgate's own SDK, each ending with a real MP4 in
the walk-through's own folder (git-ignored) and nothing else beside it."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.e2e.processes import Deployment
from vidgate.media.probe import probe_mp4

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"
FENCE = re.compile(r"^```(sh|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def walkthrough_blocks() -> list[tuple[str, str]]:
    """The (language, text) of each sh and python block of the walk-through section, in order."""
    text = README.read_text()
    section = text[text.index("## Walk-through with curl") :]
    section = section[: section.index("\n## ", 1)]
    return FENCE.findall(section)


def as_one_shell_session(blocks: list[tuple[str, str]]) -> str:
    """The blocks as one bash script: the sh ones verbatim, each python one run by the `python` that the
    shell finds (as a reader runs it, started from that shell)."""
    parts = []
    for language, text in blocks:
        assert "README_PY" not in text
        parts.append(text if language == "sh" else f"python - <<'README_PY'\n{text}README_PY\n")
    return "".join(parts)


def test_the_walkthrough_has_the_blocks_this_test_runs() -> None:
    blocks = walkthrough_blocks()
    assert [language for language, _ in blocks] == ["sh", "sh", "python", "sh", "python"]
    assert blocks[0][1].startswith(". .venv/bin/activate "), blocks[0][1]  # replaced by this test's venv
    # What the README tells a reader to install is what this test's environment has.
    install = re.fullmatch(r"pip install '([^']+)'\n", blocks[1][1])
    assert install, blocks[1][1]
    requirement = Requirement(install.group(1))
    assert requirement.name == "openai" and requirement.specifier.contains(version("openai"))
    for language, text in blocks:
        if language == "python":
            assert 'os.environ["KEY"]' in text, text


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_readme_walkthrough_works_when_pasted(tmp_path: Path) -> None:
    config = tmp_path / "vidgate.toml"
    config.write_text("embedded_worker = true\n")
    dep = Deployment(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'data' / 'vidgate.db'}", config)
    # Only what a machine other than the README's differs in: the port, and the venv's location.
    script = as_one_shell_session(walkthrough_blocks()).replace("http://127.0.0.1:8000", dep.base_url)
    script = script.replace(". .venv/bin/activate", f". {Path(sys.executable).parent / 'activate'}")
    workdir = tmp_path / "user"  # the reader's checkout; the server's data dir is elsewhere
    workdir.mkdir()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        dep.serve()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env=dep.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [p.name for p in workdir.iterdir()] == ["walkthrough"]  # everything went to the ignored folder
    out = workdir / "walkthrough"
    assert '"status":"completed"' in (out / "result.json").read_text()
    made = {"boat.mp4": 10, "boat-openai.mp4": 4, "boat-cli.mp4": 10, "boat-sdk.mp4": 10}  # seconds
    for name, seconds in made.items():
        probe = probe_mp4(out / name)
        assert (probe.width, probe.height, round(probe.seconds)) == (1280, 720, seconds), name
    lines = done.stdout.splitlines()
    assert "completed" in lines  # the openai example's print(video.status)
    assert lines[-1] == "completed 100", done.stdout  # vidgate's SDK example, last
