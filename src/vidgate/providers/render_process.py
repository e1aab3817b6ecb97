"""One built-in render in a child process that cannot outlive the process that started it.

The child is spawned, never forked (the parent runs an event loop and threads). It must die with its
parent: a worker killed with SIGKILL cannot kill its renders itself, and an orphaned render would go on
burning CPU (and holding multiprocessing's resource tracker alive) while the restarted worker renders the
same task again. Two guards, because each alone has a gap:

- On Linux, PR_SET_PDEATHSIG has the kernel SIGKILL the child the moment the *thread* that spawned it
  ends. Renders are started from the event loop's thread, which lives as long as the process; starting
  one from a short-lived thread (`anyio.to_thread`) would let that thread's end kill it.
- Everywhere, a thread in the child blocks on a pipe whose only writer is the parent: end-of-file means
  the parent is gone (however it died), and the child exits at once.

The child ignores SIGINT and SIGTERM: a Ctrl-C reaches the whole foreground process group, and it is
the parent that decides whether a render may finish (a graceful stop) or is killed (a forced stop, a
cancel, a lost lease). It is started with both blocked (a blocked signal's mask survives the exec), so
one that arrives while its interpreter starts stays pending and is discarded once it ignores them.
multiprocessing's resource tracker exits by itself once the last process holding its pipe (the parent
and every render) is gone.

Each render writes only under the step's scratch directory, which is unique to the claim (see
`worker.scratch`): a render of an attempt that lost its task can never write where the next attempt
reads. Progress crosses the process boundary through a small file that the parent reads while it waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio

from vidgate import metrics
from vidgate.engines.animate import AnimateJob, AnimateResult, render_animate
from vidgate.providers.base import ProviderError, StepContext

_PROGRESS_READ_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The child's exit status when it stops because its parent is gone (nobody is left to read it; it
# tells a person looking at a process accounting log what happened).
EXIT_PARENT_GONE = 70
_PARENT_DECIDES = {signal.SIGINT, signal.SIGTERM}  # the signals a render leaves to its parent


class ProgressFile:
    """A picklable progress callback: writes the fraction to a file the parent process reads."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, fraction: float) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{fraction:.4f}")
        os.replace(tmp, self.path)


async def render_in_subprocess(job: AnimateJob, ctx: StepContext) -> AnimateResult:
    """Render `job` into `ctx.work_dir/out` in a child process; killed at once if this is cancelled.

    Call it from the event loop's thread (see the module's docstring)."""
    out_dir = ctx.work_dir / "out"
    progress_path = ctx.work_dir / "progress"
    spawn = multiprocessing.get_context("spawn")  # never fork a process that runs an event loop
    results, child_results = spawn.Pipe(duplex=False)
    # The parent never sends on this one: its end closing is the news (see `_die_with_parent`).
    child_watch, parent_alive = spawn.Pipe(duplex=False)
    process = spawn.Process(
        target=_render_child,
        args=(child_results, child_watch, os.getpid(), job, str(out_dir), str(progress_path)),
        name=f"render-{ctx.task_id}",
    )
    started = time.perf_counter()
    _start_with_signals_blocked(process)
    child_results.close()
    child_watch.close()
    outcome: tuple[str, Any] | None = None
    try:
        while not results.poll():
            if not process.is_alive() and not results.poll():
                raise ProviderError(
                    "render_crashed",
                    f"the render process died (exit code {process.exitcode})",
                    retryable=True,
                )
            await anyio.sleep(_PROGRESS_READ_SECONDS)
            await ctx.report_progress(_read_progress(progress_path))
        outcome = results.recv()
        # Renders that ran to a result (or the engine's error); a killed one measures nothing.
        metrics.observe_render("animate", time.perf_counter() - started)
    finally:
        if outcome is None and process.is_alive():
            process.kill()  # cancelled: the task was cancelled, its lease lost, or the worker is stopping
        with anyio.CancelScope(shield=True):  # reap the child even when we are being cancelled
            await anyio.to_thread.run_sync(process.join, 10)
        results.close()
        parent_alive.close()  # only now: the child must not take a finished render for a dead parent
    assert outcome is not None  # the loop only ends with a message received
    kind, value = outcome
    if kind == "error":
        raise ProviderError("render_failed", f"The animate engine failed: {value}")
    assert isinstance(value, AnimateResult)
    return value


def _start_with_signals_blocked(process: multiprocessing.process.BaseProcess) -> None:
    # Starting the resource tracker unblocks SIGINT and SIGTERM (it blocks them for itself): it must
    # already be running when they are blocked for the child.
    resource_tracker.ensure_running()
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENT_DECIDES)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)  # one that came meanwhile is delivered now


def _read_progress(path: Path) -> int:
    try:
        return round(float(path.read_text()) * 100)
    except (OSError, ValueError):
        return 0


# The child's side ---------------------------------------------------------------------------------


def _render_child(
    results: Connection,
    parent_alive: Connection,
    parent_pid: int,
    job: AnimateJob,
    out_dir: str,
    progress_path: str,
) -> None:
    _die_with_parent(parent_alive, parent_pid)
    try:
        results.send(("ok", render_animate(job, out_dir, ProgressFile(progress_path))))
    except BaseException as exc:  # report everything; the parent decides what it means
        results.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        results.close()


def _die_with_parent(parent_alive: Connection, parent_pid: int) -> None:
    for signum in _PARENT_DECIDES:
        signal.signal(signum, signal.SIG_IGN)  # discards one that came while starting (it was blocked)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _PARENT_DECIDES)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # on failure, the pipe still guards
    if os.getppid() != parent_pid:  # the parent died before the guard was in place
        os._exit(EXIT_PARENT_GONE)
    threading.Thread(target=_exit_when_closed, args=(parent_alive,), name="parent-watch", daemon=True).start()


def _exit_when_closed(parent_alive: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        parent_alive.recv()  # the parent never sends: this returns only when its end is closed
    os._exit(EXIT_PARENT_GONE)
