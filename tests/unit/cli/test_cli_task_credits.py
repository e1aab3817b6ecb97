"""`vidgate admin tasks` shows what a task really costs (issue 21, item 9): `≤hold` only while it runs,
the captured amount once it has completed, `0 (released)` once it has failed (a timeout too) or been
cancelled, nothing for a task whose create held nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import vidgate.cli.admin
from vidgate.cli import app
from vidgate.cli.admin import task_credits
from vidgate.client import AdminTask


def task(status: str, hold: int | None, charge: int | None, **more: Any) -> dict[str, Any]:
    return {"id": f"01{status.upper()}", "status": status, "hold_amount": hold, "charge_amount": charge,
            "model": "sora-2", **more}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "hold", "charge", "shown"),
    [
        ("pending", 400_000, None, "≤0.4"),
        ("processing", 400_000, 300_000, "≤0.4"),  # at most its hold: a failover may price it again
        ("completed", 400_000, 300_000, "0.3"),  # the channel's price, captured
        ("completed", 400_000, None, "0.4"),  # no price recorded: the hold is captured
        ("completed", 400_000, 900_000, "0.4"),  # never more than the hold
        ("failed", 400_000, 400_000, "0 (released)"),  # admitted and priced, then failed: refunded
        ("failed", 400_000, None, "0 (released)"),  # e.g. timed out before any channel took it
        ("cancelled", 400_000, 400_000, "0 (released)"),
        ("completed", None, None, ""),  # a free model: nothing held
        ("failed", 0, None, ""),
    ],
)
def test_what_a_task_costs(status: str, hold: int | None, charge: int | None, shown: str) -> None:
    assert task_credits(task(status, hold, charge)) == shown


def test_the_task_list_shows_it_in_the_credits_column(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = [
        task("failed", 400_000, 400_000, error={"code": "upstream_timeout", "message": "too slow"}),
        task("completed", 400_000, 400_000),
        task("processing", 400_000, 400_000, progress=40),
    ]
    asked: list[dict[str, Any]] = []

    def list_tasks(**params: Any) -> list[AdminTask]:
        asked.append(params)
        return [AdminTask.model_validate(t) for t in tasks]

    @contextmanager
    def fake_client(conn: Any, **_: Any) -> Iterator[Any]:
        yield SimpleNamespace(admin=SimpleNamespace(tasks=list_tasks))

    monkeypatch.setattr(vidgate.cli.admin, "open_client", fake_client)
    done = CliRunner().invoke(app, ["admin", "tasks", "--key", "vg-admin"])
    assert done.exit_code == 0, done.output
    header, *rows = (line.split("\t") for line in done.stdout.splitlines())
    credits = header.index("credits")
    assert [(row[0], row[credits]) for row in rows] == [
        ("01FAILED", "0 (released)"),
        ("01COMPLETED", "0.4"),
        ("01PROCESSING", "≤0.4"),
    ]
    assert asked and asked[0]["limit"] == 20
