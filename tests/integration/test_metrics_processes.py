"""Metrics across processes: multiprocess mode (VIDGATE_METRICS_DIR) aggregates what every process
counted, and prometheus_client is not imported before the setting can choose that mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIDGATE_", "PROMETHEUS_"))}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


CHILD = """
    import os, sys
    from vidgate import metrics
    from vidgate.config import Settings
    metrics.configure(Settings(metrics_dir=sys.argv[1] if len(sys.argv) > 1 else {dir!r}))
    metrics.observe_request("/v1/video/query", "GET", 200, 0.003)
    metrics.observe_step("poll", "committed", 0.02)
    metrics.count_upstream("up", "poll", "ok")
    metrics.steps_running().inc()  # a live gauge: it counts only while its process is alive
    print(os.getpid())
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    first = int(run_python(CHILD.format(dir=str(shared))))
    second = int(run_python(CHILD.format(dir=str(shared))))
    assert first != second and sorted(p.name for p in shared.iterdir())  # mmap files, one set per process
    # A third process (as /metrics in any API process would) shows the sum; then the supervisor marks
    # the first one dead and its live gauge stops counting.
    reader = f"""
        from vidgate import metrics
        from vidgate.config import Settings
        metrics.configure(Settings(metrics_dir={str(shared)!r}))
        print(metrics.exposition().decode())
        print("=====")
        metrics.mark_process_dead({first})
        print(metrics.exposition().decode())
    """
    alive, after_death = run_python(reader).split("=====")
    both = samples(alive)
    route = (("method", "GET"), ("route", "/v1/video/query"), ("status", "200"))
    assert both[("vidgate_http_requests_total", route)] == 2
    assert both[("vidgate_http_request_duration_seconds_count", route[:2])] == 2
    assert both[("vidgate_step_duration_seconds_count", (("outcome", "committed"), ("step", "poll")))] == 2
    upstream = (("channel", "up"), ("operation", "poll"), ("outcome", "ok"))
    assert both[("vidgate_upstream_requests_total", upstream)] == 2
    assert both[("vidgate_worker_steps_running", ())] == 2
    later = samples(after_death)
    assert later[("vidgate_worker_steps_running", ())] == 1
    assert later[("vidgate_http_requests_total", route)] == 2  # totals never go down


def test_prometheus_client_is_imported_only_when_a_metric_is_first_used(tmp_path: Path) -> None:
    """Importing the app, the worker, the adapters and the CLI must not import prometheus_client:
    its storage mode is fixed at import, before VIDGATE_METRICS_DIR (maybe from a TOML file) is read."""
    shared = tmp_path / "metrics"
    out = run_python(f"""
        import sys
        import vidgate.cli, vidgate.api.app, vidgate.worker.runner, vidgate.providers.upstream_http
        import vidgate.providers.render_process, vidgate.runtime, vidgate.metrics
        assert "prometheus_client" not in sys.modules, "imported too early"
        from vidgate import metrics
        from vidgate.config import Settings
        metrics.configure(Settings(metrics_dir={str(shared)!r}))
        metrics.RATE_LIMITED.labels(limit="creates").inc()
        from prometheus_client import values
        print(values.ValueClass.__name__, metrics.multiprocess_dir())
        try:
            metrics.configure(Settings(metrics_dir={str(tmp_path / "elsewhere")!r}))
        except RuntimeError as exc:
            print("refused:", exc)
    """)
    assert f"MmapedValue {shared}" in out  # prometheus_client's multiprocess value class
    assert "refused: VIDGATE_METRICS_DIR=" in out
    assert any(p.name.startswith("counter_") for p in shared.iterdir())
