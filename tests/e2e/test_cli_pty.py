"""`vidgate video create --wait` on a real terminal: the CLI runs in a pseudo-terminal (its controlling
terminal, 140x40), against a real gateway over loopback, and the test reads the screen it draws: the
progress display (status, percent, elapsed), the download bar, the exit code; and Ctrl-C typed while it
waits (the terminal turns it into SIGINT), which detaches: the task goes on and completes."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.helpers import wait_for_status
from vidgate.config import ChannelSettings
from vidgate.media.probe import probe_mp4

pytestmark = pytest.mark.anyio

# Runs in the child before vidgate: take the pty (stdin) as the controlling terminal of the new session,
# so that ^C typed on it is a SIGINT to this process, and give it a size, as a terminal window has.
LAUNCH = (
    "import fcntl, os, struct, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 140, 0, 0))\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'vidgate', *sys.argv[1:]])\n"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the subject is the terminal display, not the store."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"


@pytest.fixture
async def gw(start_gateway: GatewayFactory, tmp_path: Path) -> AsyncIterator[Gateway]:
    def scripted(name: str, model: str, polls: int) -> ChannelSettings:
        options = {"state_dir": str(tmp_path / name), "polls": polls, "poll_after": 0.1, "clip_scale": 4}
        return ChannelSettings(name=name, kind="scripted", models=[model], options=options)

    # sora-2: a few seconds with progress along the way; sora-2-pro: long enough to be interrupted.
    chans = [scripted("steady", "sora-2", 20), scripted("long", "sora-2-pro", 80)]
    async with start_gateway(run_worker=True, channels=chans) as gateway:
        yield gateway


class Terminal:
    """One `vidgate ...` process on a pseudo-terminal; everything it writes to it is kept in `raw`."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self.raw = b""

    @property
    def screen(self) -> str:
        """What was written, escape sequences removed (every redraw of the display, one after another)."""
        return ANSI.sub("", self.raw.decode(errors="replace")).replace("\r", "\n")

    def _read(self, timeout: float) -> bool:
        """Read what is there within `timeout`; False at end of output (the child closed the terminal)."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every copy of the slave side is closed
            return False
        self.raw += chunk
        return bool(chunk)

    def read_until(self, pattern: str, *, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.screen):
                return match
            if not self._read(0.1):
                break
        raise AssertionError(f"{pattern!r} never appeared on the screen:\n{self.screen}")

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, *, timeout: float) -> int:
        """Read to the end of the output; the exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.2):
            pass
        code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self.master)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def cli_env(gw: Gateway, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    return {**env, "VIDGATE_BASE_URL": gw.base_url, "VIDGATE_API_KEY": key, "TERM": "xterm-256color"}


async def in_terminal(args: list[str], env: dict[str, str], cwd: Path, script: Any) -> tuple[int, str]:
    """Run `script(terminal)` (blocking reads) off the event loop, which serves the gateway."""

    def run() -> tuple[int, str]:
        term = Terminal(args, env, cwd)
        try:
            return script(term), term.screen
        finally:
            term.kill()

    return await anyio.to_thread.run_sync(run)


async def test_the_progress_display_then_the_download_bar(gw: Gateway, tmp_path: Path) -> None:
    key = await gw.new_key()
    # A path longer than the terminal's 140 columns: it must come out whole, to be copied.
    folder = tmp_path / ("a-folder-with-a-long-name-" * 5)
    folder.mkdir()
    out = folder / "boat.mp4"
    args = [
        "video",
        "create",
        "-p",
        "a paper boat",
        "--size",
        "1280x720",
        "--duration",
        "4",
        "--wait",
        "-o",
        str(out),
    ]
    code, screen = await in_terminal(args, cli_env(gw, key), tmp_path, lambda t: t.finish(timeout=120))
    assert code == 0, screen
    task_id = re.search(r"completed (video_\w+) in ", screen)
    assert task_id, screen
    # The progress line: the id, the status, a percentage, the elapsed time (h:mm:ss)
    assert re.search(rf"{task_id[1]}\s+(pending|processing)", screen), screen
    assert re.search(rf"{task_id[1]}\s+completed\s.*\b100%\s+\d:\d\d:\d\d", screen), screen
    # The download bar: bytes of the total, then the summary line
    assert re.search(r"download\s.*\b[\d.]+/[\d.]+ (bytes|kB|MB)", screen), screen
    assert re.search(rf"saved {re.escape(str(out))} \([\d.]+ (bytes|kB|MB)\)", screen), screen
    assert key not in screen and "{" not in screen  # no secret, and no JSON on a terminal
    info = probe_mp4(out, count_frames=True)
    assert (info.width, info.height) == (320, 180) and info.frames > 0


async def test_ctrl_c_while_waiting_detaches_and_the_task_completes(gw: Gateway, tmp_path: Path) -> None:
    key = await gw.new_key()
    args = ["video", "create", "-m", "sora-2-pro", "-p", "a long one", "--wait", "-o", "long.mp4"]

    def interrupt(term: Terminal) -> int:
        term.read_until(r"video_\w+\s+(pending|processing)", timeout=60)  # the display is up: waiting
        term.type(b"\x03")  # Ctrl-C, as typed
        return term.finish(timeout=60)

    code, screen = await in_terminal(args, cli_env(gw, key), tmp_path, interrupt)
    assert code == 130, screen
    resume = re.search(r"resume with: vidgate video wait (video_\w+) -o long\.mp4", screen)
    assert resume, screen
    assert f"detached: {resume[1]} goes on running on the server" in screen
    assert "Traceback" not in screen and "Aborted" not in screen
    async with gw.client(key) as http:
        now = (await http.get("/v1/video/query", params={"id": resume[1]})).json()
        assert now["status"] in ("pending", "processing"), now  # not cancelled by the Ctrl-C
        done = await wait_for_status(http, resume[1], timeout=90)
    assert done["status"] == "completed", done
    assert not (tmp_path / "long.mp4").exists()


async def test_timeout_on_a_terminal_exits_3_with_the_way_back(gw: Gateway, tmp_path: Path) -> None:
    key = await gw.new_key()
    args = ["video", "create", "-m", "sora-2-pro", "-p", "patience", "--wait", "--timeout", "2s"]
    code, screen = await in_terminal(args, cli_env(gw, key), tmp_path, lambda t: t.finish(timeout=60))
    assert code == 3, screen
    assert re.search(r"timed out after 2s: video_\w+ is still (pending|processing)", screen), screen
    assert re.search(r"resume with: vidgate video wait video_\w+", screen), screen
