"""The `vidgate` command as a user runs it: keys, db, and serve refusing an out-of-date schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from vidgate.store.db import sync_url
from vidgate.store.keys import hash_key
from vidgate.store.tables import api_keys


def run(args: list[str], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    return {
        **base,
        "VIDGATE_DATA_DIR": str(tmp_path / "data"),
        "VIDGATE_DATABASE_URL": db_url,
        "VIDGATE_AUTO_MIGRATE": "true",
    }


def test_keys_create_list_revoke(env: dict[str, str]) -> None:
    created = run(["keys", "create", "--name", "alice", "--admin"], env)
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("vg-") and len(key) > 40
    assert key not in created.stderr
    listing = run(["keys", "list"], env).stdout
    assert "alice" in listing and key[:8] in listing
    assert key not in listing and hash_key(key) not in listing
    key_id = next(line.split("\t")[0] for line in listing.splitlines() if "alice" in line)
    run(["keys", "revoke", key_id], env)
    assert run(["keys", "revoke", key_id], env, check=False).returncode == 1


def test_only_the_hash_is_stored(env: dict[str, str]) -> None:
    key = run(["keys", "create", "--name", "bob"], env).stdout.strip().splitlines()[-1]
    engine = create_engine(sync_url(env["VIDGATE_DATABASE_URL"]))
    with engine.connect() as conn:
        [row] = conn.execute(select(api_keys)).mappings().all()
    engine.dispose()
    assert row["key_hash"] == hash_key(key)
    assert all(key not in str(value) for value in row.values())


def test_db_upgrade_and_current(env: dict[str, str]) -> None:
    no_auto = {**env, "VIDGATE_AUTO_MIGRATE": "false"}
    assert "current: none" in run(["db", "current"], no_auto).stdout
    refused = run(["keys", "list"], no_auto, check=False)
    assert refused.returncode == 1 and "vidgate db upgrade" in refused.stderr
    run(["db", "upgrade"], no_auto)
    out = run(["db", "current"], no_auto).stdout
    current, head = (line.split(": ")[1] for line in out.strip().splitlines())
    assert current == head != "none"
    run(["db", "upgrade"], no_auto)  # idempotent


def test_bad_settings_are_reported_without_a_traceback(env: dict[str, str]) -> None:
    result = run(["keys", "list"], {**env, "VIDGATE_PORT": "eighty"}, check=False)
    assert result.returncode == 2
    assert "port" in result.stderr and "Traceback" not in result.stderr
