"""`serve --workers N` pieces that need no processes: the setting's bounds, the CLI's refusal, the
metrics directory the supervisor makes for its children (the processes: tests/e2e/test_serve_workers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from vidgate.api.supervisor import _metrics_dir
from vidgate.cli import app
from vidgate.config import Settings


@pytest.mark.parametrize("n", [0, 65])
def test_http_workers_out_of_bounds_is_refused(n: int) -> None:
    with pytest.raises(ValidationError, match="http_workers"):
        Settings(http_workers=n)


def test_serve_refuses_zero_workers_before_doing_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "0"], env={"VIDGATE_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert "--workers" in result.output
    assert not (tmp_path / "vidgate.db").exists()


def test_several_processes_get_a_temporary_metrics_dir_removed_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with _metrics_dir(Settings(), 2) as made:
        assert made is not None and Path(made).is_dir()
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made  # what the children inherit
    assert not Path(made).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_one_process_or_a_given_dir_needs_no_temporary_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with _metrics_dir(Settings(), 1) as none:
        assert none is None and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with _metrics_dir(Settings(), 3) as given:
        assert given == str(tmp_path)
    assert tmp_path.is_dir(), "a directory the supervisor did not make is left alone"
