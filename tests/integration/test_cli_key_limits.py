"""`vidgate keys create --requests-per-minute ...` and `vidgate keys limits KEY_ID ...`: per-key limits
as stored (NULL = the setting's default, 0 = unlimited) and as shown; bad values exit 2 and say why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from tests.integration.test_cli import run
from vidgate.store.db import sync_url
from vidgate.store.tables import api_keys


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    return {
        **base,
        "VIDGATE_DATA_DIR": str(tmp_path / "data"),
        "VIDGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}",
        "VIDGATE_AUTO_MIGRATE": "true",
    }


def stored_limits(env: dict[str, str]) -> dict[str, tuple[int | None, ...]]:
    engine = create_engine(sync_url(env["VIDGATE_DATABASE_URL"]))
    columns = (api_keys.c.requests_per_minute, api_keys.c.creates_per_minute, api_keys.c.max_active_tasks)
    with engine.connect() as conn:
        rows = conn.execute(select(api_keys.c.name, *columns)).all()
    engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}


def key_id(env: dict[str, str], name: str) -> str:
    listing = run(["keys", "list"], env).stdout
    return next(line.split("\t")[0] for line in listing.splitlines() if f"\t{name}\t" in line)


def test_create_with_limits_then_change_and_show_them(env: dict[str, str]) -> None:
    run(["keys", "create", "--name", "plain"], env)
    run(
        ["keys", "create", "--name", "capped", "--requests-per-minute", "600",
         "--creates-per-minute", "unlimited", "--max-active-tasks", "4"],
        env,
    )  # fmt: skip
    assert stored_limits(env) == {"plain": (None, None, None), "capped": (600, 0, 4)}

    capped = key_id(env, "capped")
    shown = run(["keys", "limits", capped], {**env, "VIDGATE_CREATES_PER_MINUTE": "30"}).stdout
    assert shown.splitlines() == [
        "limit\tthis key\tin effect",
        "requests_per_minute\t600\t600",
        "creates_per_minute\tunlimited\tunlimited",
        "max_active_tasks\t4\t4",
    ]
    changed = run(["keys", "limits", capped, "--creates-per-minute", "default", "--max-active-tasks", "9"],
                  {**env, "VIDGATE_CREATES_PER_MINUTE": "30"}).stdout  # fmt: skip
    assert "creates_per_minute\tdefault\t30" in changed
    assert "max_active_tasks\t9\t9" in changed
    assert stored_limits(env)["capped"] == (600, None, 9)
    assert stored_limits(env)["plain"] == (None, None, None)


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5", ""])
def test_a_bad_limit_is_refused_with_the_option_named(env: dict[str, str], value: str) -> None:
    refused = run(["keys", "create", "--name", "x", "--requests-per-minute", value], env, check=False)
    assert refused.returncode == 2
    assert "--requests-per-minute" in refused.stderr
    assert "unlimited" in refused.stderr and "default" in refused.stderr
    assert refused.stdout == ""  # refused before any key was made


def test_limits_of_an_unknown_key_exit_1(env: dict[str, str]) -> None:
    missing = run(["keys", "limits", "01NOSUCHKEY", "--max-active-tasks", "2"], env, check=False)
    assert missing.returncode == 1
    assert "no key with id 01NOSUCHKEY" in missing.stderr
