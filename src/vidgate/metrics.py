"""Prometheus metrics: the metric objects, cheap helpers for the hot paths, and multiprocess mode.

prometheus_client decides how it keeps values (in this process's memory, or in mmap files that every
process on the host shares) once, when it is first imported, from `PROMETHEUS_MULTIPROC_DIR`. So this
module never imports it at import time: the metric objects are built on first use, after `configure`
has exported `VIDGATE_METRICS_DIR` (the CLI and the runtime call it before any request or step).
Read them as attributes at call time (`metrics.RATE_LIMITED.labels(limit="creates").inc()`); a
module-level `from vidgate.metrics import RATE_LIMITED` would build them, and import prometheus_client,
when the importing module is imported.

Label values are bounded: routes are templates (`/v1/videos/{video_id}`), never raw paths; there is
no key or task label (key and task ids are in the log lines instead).

`.labels()` takes a lock and builds a tuple key each time, so the helpers below keep each label
combination's child in a dict of their own: one dict lookup on the hot path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

    from vidgate.config import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Upstream call outcomes (`UPSTREAM_REQUESTS`' `outcome` label).
OUTCOMES = ("ok", "http_4xx", "http_429", "http_5xx", "timeout", "connect", "broken", "unknown_outcome")

if TYPE_CHECKING:  # built by _build() on first attribute access; see __getattr__
    HTTP_REQUESTS: Counter
    HTTP_DURATION: Histogram
    TASKS_ENDED: Counter
    STEP_DURATION: Histogram
    STEPS_RUNNING: Gauge
    UPSTREAM_REQUESTS: Counter
    RENDER_SECONDS: Histogram
    RATE_LIMITED: Counter
    INCOMPLETE_BODIES: Counter

_NAMES = frozenset(
    {
        "HTTP_REQUESTS",
        "HTTP_DURATION",
        "TASKS_ENDED",
        "STEP_DURATION",
        "STEPS_RUNNING",
        "UPSTREAM_REQUESTS",
        "RENDER_SECONDS",
        "RATE_LIMITED",
        "INCOMPLETE_BODIES",
    }
)
_built: dict[str, Any] | None = None
_built_multiproc_dir: str | None = None


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return _build()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build() -> dict[str, Any]:
    global _built, _built_multiproc_dir
    if _built is not None:
        return _built
    from prometheus_client import Counter, Gauge, Histogram

    _built_multiproc_dir = os.environ.get(MULTIPROC_ENV)
    built: dict[str, Any] = {
        "HTTP_REQUESTS": Counter(
            "vidgate_http_requests",
            "HTTP requests answered, by route template",
            ["route", "method", "status"],
        ),
        "HTTP_DURATION": Histogram(
            "vidgate_http_request_duration_seconds",
            "Time from a request's start to the end of its answer, by route template",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        "TASKS_ENDED": Counter("vidgate_tasks_ended", "Tasks a worker ended, by final status", ["status"]),
        "STEP_DURATION": Histogram(
            "vidgate_step_duration_seconds",
            "Worker steps: time from claim to commit, by step and outcome "
            "(committed, lost, stopped, crashed)",
            ["step", "outcome"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        ),
        "STEPS_RUNNING": Gauge(
            "vidgate_worker_steps_running", "Worker steps in flight", multiprocess_mode="livesum"
        ),
        "UPSTREAM_REQUESTS": Counter(
            "vidgate_upstream_requests",
            "HTTP requests to upstream channels, by channel, operation and outcome",
            ["channel", "operation", "outcome"],
        ),
        "RENDER_SECONDS": Histogram(
            "vidgate_render_seconds",
            "Built-in engine renders, from start to result",
            ["engine"],
            buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200),
        ),
        "RATE_LIMITED": Counter(
            "vidgate_rate_limited", "Requests refused by a rate limit or cap, by limit", ["limit"]
        ),
        "INCOMPLETE_BODIES": Counter(
            "vidgate_http_incomplete_bodies",
            "Request bodies that never arrived whole: a body deadline passed (idle_timeout, "
            "total_timeout) or the client left (client_disconnected)",
            ["reason"],
        ),
    }
    globals().update(built)  # later reads are plain module attributes, no __getattr__
    _built = built
    return built


# Processes -------------------------------------------------------------------------------------------


def configure(settings: Settings) -> Path | None:
    """Export `settings.metrics_dir` as PROMETHEUS_MULTIPROC_DIR (made if missing). Must run before the
    first metric is used in this process; child processes inherit the variable.

    Raises RuntimeError when the metrics were already built in another mode: their values would go
    where no /metrics reads them."""
    if settings.metrics_dir is None:
        return multiprocess_dir()
    path = settings.metrics_dir.resolve()
    path.mkdir(parents=True, exist_ok=True)
    if _built is not None and _built_multiproc_dir != str(path):
        raise RuntimeError(
            f"VIDGATE_METRICS_DIR={path} came after this process's metrics were first used "
            f"(PROMETHEUS_MULTIPROC_DIR was {_built_multiproc_dir!r} then)"
        )
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def multiprocess_dir() -> Path | None:
    """The shared directory this process's metrics go to (once built), or None for in-process metrics."""
    raw = _built_multiproc_dir if _built is not None else os.environ.get(MULTIPROC_ENV)
    return Path(raw) if raw else None


def mark_process_dead(pid: int) -> None:
    """A supervisor's bookkeeping when child `pid` has exited: its live gauges stop counting.
    Its counters and histograms stay: they are totals, and a restart must not make them go down."""
    path = multiprocess_dir()
    if path is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def exposition(*extra: Collector) -> bytes:
    """The text exposition of every metric (all processes' in multiprocess mode) plus `extra`.

    Blocking in multiprocess mode (it reads every process's files): call it in a thread there."""
    _build()
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    path = multiprocess_dir()
    if path is None:
        return generate_latest(_Union(REGISTRY, *extra))
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return generate_latest(_Union(registry, *extra))


class _Union:
    """Several collectors as one (`generate_latest` takes one), without registering anything."""

    def __init__(self, *parts: Collector) -> None:
        self.parts = parts

    def collect(self) -> Iterable[Metric]:
        for part in self.parts:
            yield from part.collect()


# Hot-path helpers (label children cached) ------------------------------------------------------------

_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_step_children: dict[tuple[str, str], Any] = {}
_upstream_children: dict[tuple[str, str, str], Any] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status)
    children = _http_children.get(key)
    if children is None:
        built = _build()
        children = (
            built["HTTP_REQUESTS"].labels(route, method, str(status)),
            built["HTTP_DURATION"].labels(route, method),
        )
        _http_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def observe_step(step: str, outcome: str, seconds: float) -> None:
    child = _step_children.get((step, outcome))
    if child is None:
        child = _step_children[(step, outcome)] = _build()["STEP_DURATION"].labels(step, outcome)
    child.observe(seconds)


def count_upstream(channel: str, operation: str, outcome: str) -> None:
    key = (channel, operation, outcome)
    child = _upstream_children.get(key)
    if child is None:
        child = _upstream_children[key] = _build()["UPSTREAM_REQUESTS"].labels(channel, operation, outcome)
    child.inc()


def count_task_ended(status: str) -> None:
    _build()["TASKS_ENDED"].labels(status).inc()


def count_incomplete_body(reason: str) -> None:
    _build()["INCOMPLETE_BODIES"].labels(reason).inc()


def observe_render(engine: str, seconds: float) -> None:
    _build()["RENDER_SECONDS"].labels(engine).observe(seconds)


def steps_running() -> Gauge:
    gauge: Gauge = _build()["STEPS_RUNNING"]
    return gauge


def prometheus_imported() -> bool:
    """Whether prometheus_client is loaded in this process (for the import-order test)."""
    return "prometheus_client" in sys.modules
