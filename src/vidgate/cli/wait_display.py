"""How `vidgate video create --wait` / `vidgate video wait` show a task on its way: a rich progress display
on a terminal, JSON Lines otherwise (one object per status or progress change); and the download bar.

Only the task's id, status and progress are shown: nothing here ever sees the API key, and the signed
media links in a video's JSON are left out of the terminal display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from vidgate.cli.connection import dump
from vidgate.cli.output import format_duration, print_json

if TYPE_CHECKING:
    from vidgate.client import Video

TERMINAL = ("completed", "failed", "cancelled")


class WaitDisplay(Protocol):
    is_terminal: bool

    def __enter__(self) -> WaitDisplay: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def update(self, video: Video) -> None:
        """The task as last seen (called for every poll that brought a change, and more: dedupe here)."""

    def finish(self, video: Video, *, output: Path | None = None) -> None:
        """The last word on the task, once waiting (and any download) is over."""


class JsonLinesDisplay:
    """One JSON object per change of (status, progress), on stdout. The terminal state is held back until
    `finish`, so that with -o it can carry `"output": "<path>"` once the file is written: the last line is
    the final state either way."""

    is_terminal = False

    def __init__(self) -> None:
        self._last: tuple[str, int] | None = None

    def __enter__(self) -> JsonLinesDisplay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def update(self, video: Video) -> None:
        state = (video.status, video.progress)
        if state == self._last or video.status in TERMINAL:
            return
        self._last = state
        print_json(dump(video))

    def finish(self, video: Video, *, output: Path | None = None) -> None:
        state = (video.status, video.progress)
        if state == self._last and video.status not in TERMINAL:
            return  # a timeout: its state is the line already printed
        self._last = state
        data = dump(video)
        if output is not None:
            data["output"] = str(output.resolve())
        print_json(data)


class TerminalDisplay:
    """spinner · id · status · bar (pulsing while pending) · percent · elapsed, redrawn in place."""

    is_terminal = True

    def __init__(self, video_id: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console()
        self._progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description}", markup=False),
            TextColumn("{task.fields[status]:<10}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task = self._progress.add_task(video_id, total=None, status="pending", start=True)

    def __enter__(self) -> TerminalDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def update(self, video: Video) -> None:
        fields: dict[str, Any] = {"status": video.status}
        if video.status == "pending":
            self._progress.update(self._task, total=None, completed=0, **fields)
        elif video.status == "completed":
            self._progress.update(self._task, total=100, completed=100, **fields)
        elif video.status in TERMINAL:  # failed or cancelled: the bar stops where it was
            self._progress.update(self._task, total=100, completed=video.progress, **fields)
            self._progress.stop_task(self._task)
        else:
            self._progress.update(self._task, total=100, completed=video.progress, **fields)

    def finish(self, video: Video, *, output: Path | None = None) -> None:
        if video.status != "completed":
            return  # the caller prints the error (stderr) or the timeout's way back
        elapsed = self._progress.tasks[0].elapsed or 0.0
        line = f"completed {video.id} in {format_duration(round(elapsed, 1))}"
        if output is not None:
            line += f"; saved {output} ({_size(output.stat().st_size)})"
        # soft_wrap: a path longer than the terminal is wrapped by the terminal, not broken by a newline of
        # ours, so that it can be copied whole.
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} GB"


@contextmanager
def download_bar(*, enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """An `on_progress(bytes_done, total)` for the SDK's download that drives a download bar (size, speed,
    time left), or None when not on a terminal."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("download"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task("download", total=None)

        def on_progress(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield on_progress
