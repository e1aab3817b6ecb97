"""`run_uvicorn`'s stop (vidgate.api.signals), in a child process of its own: signal handlers belong to a
process's main thread, and the test's process must keep its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A server stopped by a SIGINT it sends itself while it starts, then a late SIGINT, as one that
# waited in the event loop's wake-up pipe reaches Python's handler while the loop closes.
LATE_SIGINT = textwrap.dedent(
    """
    import contextlib, os, signal
    from fastapi import FastAPI
    from vidgate.api.signals import run_uvicorn
    from vidgate.testing.server import bind_loopback

    @contextlib.asynccontextmanager
    async def lifespan(app):
        os.kill(os.getpid(), signal.SIGINT)
        yield

    run_uvicorn(FastAPI(lifespan=lifespan), sockets=[bind_loopback()], log_level="warning")
    signal.raise_signal(signal.SIGINT)
    print("stopped cleanly")
    """
)


def test_a_sigint_after_the_server_stopped_for_one_does_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LATE_SIGINT],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "stopped cleanly"), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
