"""A real redis-server for tests: a child process on 127.0.0.1, no persistence, stopped by its PID.

Tests that need one skip when `redis-server` is not installed, unless VIDGATE_TEST_REQUIRE_REDIS=1
(CI), which makes them fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vidgate.testing.server import bind_loopback

REDIS_REQUIRED = os.environ.get("VIDGATE_TEST_REQUIRE_REDIS") == "1"


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if REDIS_REQUIRED:
            pytest.fail("VIDGATE_TEST_REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("needs redis-server (apt-get install redis-server)")
    return binary


class RedisServer:
    """One redis-server child on a loopback port; `stop()` and `start()` again keep the port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = redis_server_binary()
        self.workdir = workdir
        sock = bind_loopback()
        self.port = sock.getsockname()[1]
        sock.close()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--bind", "127.0.0.1",
                    "--port", str(self.port),
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self.workdir),
                ],
                stdout=log,
                stderr=log,
                cwd=self.workdir,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.workdir}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("redis-server did not answer PING within 20 s")
            time.sleep(0.05)  # still starting

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # our own child, by its PID
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def flush(self) -> None:
        """Forget every key (the session's server is shared by tests)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            assert conn.recv(16).startswith(b"+OK")


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
