"""`vidgate serve --workers N`: N API processes on one port, watched by the process that started them.

The parent prepares the database once and binds the listening socket once; each child (a fresh
interpreter: multiprocessing's spawn context) runs the same server as a single `vidgate serve`
(api.signals, api.http_server) on that socket, and the kernel spreads connections between them.

- Signals: every SIGTERM or SIGINT the parent gets is sent on to each child, so a first one stops them
  gracefully and a second one at once, as with one process. The children lead process groups of their
  own, so that a Ctrl-C or a `kill` of the parent's group reaches them once, through the parent, rather
  than twice (which they would take for the second signal). A child whose parent dies stops gracefully.
- A child that dies unexpectedly is replaced, after a pause that doubles (0.5 s up to 30 s) while
  replacements keep dying young. A child that fails while the first N start (a bad setting, an
  unreachable database) stops everything: exit status 3, as for one process.
- After a stop, the parent exits 0 once no child is left (1 if one ended badly).
- The embedded worker runs in the first child only (the same one again after a restart): one claim
  loop per host is what the single-process mode has. Prefer `--no-worker` plus `vidgate worker`
  processes (docs/scaling.md).
- Prometheus metrics: with N > 1 every child writes to one multiprocess directory, the metrics dir if
  one is set, else a temporary one this process makes, exports and removes at exit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

import structlog
from uvicorn.config import STARTUP_FAILURE

from vidgate import metrics
from vidgate.config import Settings

log = structlog.get_logger("vidgate.supervisor")
_spawn = multiprocessing.get_context("spawn")

STARTUP_TIMEOUT_S = 120.0  # imports, the app's startup (database, storage) and listening, per child
_HEALTHY_AFTER_S = 30.0  # a child that lived this long died of something else than its start
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
_BACKLOG = 2048  # uvicorn's default: connections queue here while a child is replaced


def serve_processes(settings: Settings, *, run_worker: bool, say: Callable[[str], object]) -> int:
    """`vidgate serve` with `settings.http_workers` processes (the schema already prepared); the exit
    status. `say` prints a line for the operator."""
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        say(f"[red]cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}[/red]")
        return STARTUP_FAILURE
    with sock:
        if settings.port == 0:  # an ephemeral port (tests): the links must name the one bound
            settings = settings.model_copy(update={"port": sock.getsockname()[1]})
        n = settings.http_workers
        if settings.is_sqlite:
            log.warning(
                "several API processes on one SQLite database: their writes wait on each other "
                "(busy_timeout); use PostgreSQL to scale out (docs/scaling.md)",
                processes=n,
            )
        if run_worker:
            log.info(
                "the embedded worker runs in the first API process only; for more, use --no-worker "
                "and `vidgate worker` processes (docs/scaling.md)",
                processes=n,
            )
        data = settings.data_dir.resolve()
        say(f"vidgate listening on {settings.base_url} with {n} processes  (data: {data})")
        return Supervisor(settings, sock, n, run_worker).run()


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket every child serves on (bound and listening before any child exists, so
    connections queue rather than fail while children start or are replaced)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@dataclass
class _Slot:
    """One of the N places a child serves in; slot 0 runs the embedded worker, if any."""

    index: int
    process: SpawnProcess | None = None
    ready_conn: Connection | None = None
    ready: bool = False
    started_at: float = 0.0
    quick_deaths: int = 0  # children in a row that died during or soon after their start
    restart_at: float | None = None


@dataclass
class Supervisor:
    settings: Settings
    sock: socket.socket
    workers: int
    run_worker: bool
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    slots: list[_Slot] = field(default_factory=list)
    _signals: list[int] = field(default_factory=list)
    _stopping: bool = False
    _startup_failed: bool = False
    _unclean: bool = False
    _all_started_once: bool = False
    _metrics_dir: str | None = None

    def run(self) -> int:
        """Serve until stopped; the exit status for `vidgate serve`."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous_wakeup = signal.set_wakeup_fd(wake_w)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            with _metrics_dir(self.settings, self.workers) as metrics_dir:
                self._metrics_dir = metrics_dir
                self.slots = [_Slot(i) for i in range(self.workers)]
                for slot in self.slots:
                    self._start(slot)
                self._loop(wake_r)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_r)
            os.close(wake_w)
        if self._startup_failed:
            return STARTUP_FAILURE
        return 1 if self._unclean else 0

    # Signals ------------------------------------------------------------------------------------

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals.append(sig)  # handled by the loop (woken through the wakeup fd)

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            second = self._stopping
            self._stopping = True
            name = signal.Signals(sig).name
            if second:
                log.warning("stopping at once: running steps stop, their tasks are handed back", signal=name)
            else:
                log.warning(
                    "stopping: each process first finishes its requests and running steps "
                    "(the worker says what it waits for); press Ctrl-C again to stop at once",
                    signal=name,
                )
            self._send_all(sig)

    def _send_all(self, sig: int) -> None:
        for slot in self.slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.pid is not None and slot.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, sig)

    # The loop -----------------------------------------------------------------------------------

    def _loop(self, wake_r: int) -> None:
        while True:
            self._handle_signals()
            self._reap()
            self._check_startup_deadlines()
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None and slot.restart_at <= now and not self._stopping:
                    self._start(slot)
            if self._stopping and all(slot.process is None for slot in self.slots):
                return
            waitables: list[Any] = [wake_r]
            for slot in self.slots:
                if slot.process is not None:
                    waitables.append(slot.process.sentinel)
                    if slot.ready_conn is not None:
                        waitables.append(slot.ready_conn)
            for ready in wait(waitables, timeout=self._next_timeout()):
                if ready == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                elif isinstance(ready, Connection):
                    self._on_ready_message(ready)

    def _next_timeout(self) -> float | None:
        deadlines = [s.restart_at for s in self.slots if s.restart_at is not None]
        deadlines += [
            s.started_at + self.startup_timeout_s for s in self.slots if s.process is not None and not s.ready
        ]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _start(self, slot: _Slot) -> None:
        receive, send = _spawn.Pipe(duplex=False)
        process = _spawn.Process(
            target=_child_main,
            args=(self.settings, self.sock, send, self.run_worker and slot.index == 0),
            name=f"vidgate-http-{slot.index}",
        )
        process.start()
        send.close()  # the child holds its end: EOF here once it has gone
        slot.process, slot.ready_conn, slot.ready = process, receive, False
        slot.started_at, slot.restart_at = time.monotonic(), None
        log.debug("http process starting", slot=slot.index, pid=process.pid)

    def _on_ready_message(self, conn: Connection) -> None:
        slot = next(s for s in self.slots if s.ready_conn is conn)
        try:
            conn.recv_bytes()
        except (EOFError, OSError):  # the child has gone (or is going): its sentinel says so
            conn.close()
            slot.ready_conn = None
            return
        conn.close()
        slot.ready, slot.ready_conn = True, None
        if not self._all_started_once and all(s.ready for s in self.slots):
            self._all_started_once = True
            log.info("serving", processes=self.workers, pids=[s.process.pid for s in self.slots if s.process])
        elif self._all_started_once:
            log.info("http process replaced", slot=slot.index, pid=slot.process.pid if slot.process else None)

    def _reap(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None or process.is_alive():
                continue
            process.join()
            code, pid = process.exitcode, process.pid
            if slot.ready_conn is not None:
                slot.ready_conn.close()
            slot.process, slot.ready_conn = None, None
            if pid is not None:
                _mark_process_dead(pid, self._metrics_dir)
            lived = time.monotonic() - slot.started_at
            if self._stopping:
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    self._unclean = True
                    log.warning("http process ended badly while stopping", pid=pid, exit_code=code)
                continue
            if not slot.ready and not self._all_started_once:
                log.error("http process failed to start; stopping", pid=pid, exit_code=code)
                self._startup_failed = True
                self._stopping = True
                self._send_all(signal.SIGTERM)
                continue
            slot.quick_deaths = slot.quick_deaths + 1 if (not slot.ready or lived < _HEALTHY_AFTER_S) else 1
            delay = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** (slot.quick_deaths - 1))
            slot.restart_at = time.monotonic() + delay
            log.warning(
                "http process died; replacing it",
                pid=pid,
                exit_code=code,
                during_startup=not slot.ready,
                restart_in_s=delay,
            )

    def _check_startup_deadlines(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is None or slot.ready or now < slot.started_at + self.startup_timeout_s:
                continue
            log.error("http process did not start in time", pid=process.pid, seconds=self.startup_timeout_s)
            process.kill()  # reaped as a failed start on the next round
            slot.started_at = now  # not killed again while it dies


def _child_main(settings: Settings, sock: socket.socket, ready: Connection, run_worker: bool) -> None:
    """A child: the single-process server, on the parent's socket, telling the parent once it serves."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # see the module docstring: signals come through the parent
    _stop_when_parent_dies()
    # A Ctrl-C passed on before uvicorn handles signals (while this imports the app): the parent is
    # stopping, and this child ends quietly rather than with a traceback.
    with contextlib.suppress(KeyboardInterrupt):
        from vidgate.api.app import create_app
        from vidgate.api.http_server import uvicorn_options
        from vidgate.api.signals import run_uvicorn
        from vidgate.logs import configure_logging

        configure_logging(settings)

        def started() -> None:
            ready.send_bytes(b"ready")
            ready.close()

        run_uvicorn(
            create_app(settings, run_worker=run_worker),
            sockets=[sock],
            on_started=started,
            **uvicorn_options(settings),
        )


def _stop_when_parent_dies() -> None:
    """A graceful stop (as for a SIGTERM) once the supervisor has gone, even by SIGKILL."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@contextlib.contextmanager
def _metrics_dir(settings: Settings, workers: int) -> Iterator[str | None]:
    """The Prometheus multiprocess directory the children share, exported to them before they import
    prometheus_client (which picks its mode when first imported; this process never imports it)."""
    if settings.metrics_dir is not None:
        configured: str | None = str(metrics.configure(settings))  # made, and exported
    else:
        configured = os.environ.get(metrics.MULTIPROC_ENV) or None  # set by whoever started us
    if configured is not None or workers == 1:
        yield configured
        return
    made = tempfile.mkdtemp(prefix="vidgate-metrics-")
    os.environ[metrics.MULTIPROC_ENV] = made
    try:
        yield made
    finally:
        os.environ.pop(metrics.MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)


def _mark_process_dead(pid: int, metrics_dir: str | None) -> None:
    """Drop a gone child's live gauges from the shared metrics (its totals stay)."""
    if metrics_dir is None:
        return
    try:
        metrics.mark_process_dead(pid)
    except Exception:  # metrics must never take the supervisor down
        log.exception("could not mark a metrics process dead", pid=pid)
