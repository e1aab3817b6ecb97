"""`vidgate keys create --balance/--unlimited/--allowed-model`, `vidgate keys topup` and `vidgate keys
adjust`: credits as people write them, stored exactly in micro-credits with a ledger entry each; bad
amounts exit 2 and say why, an unknown or unlimited key exits 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from tests.integration.test_cli import run
from tests.integration.test_cli_key_limits import key_id
from vidgate.store.db import sync_url
from vidgate.store.tables import api_keys, ledger_entries


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    return {
        **base,
        "VIDGATE_DATA_DIR": str(tmp_path / "data"),
        "VIDGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}",
        "VIDGATE_AUTO_MIGRATE": "true",
    }


def accounts(env: dict[str, str]) -> dict[str, tuple]:
    engine = create_engine(sync_url(env["VIDGATE_DATABASE_URL"]))
    with engine.connect() as conn:
        keys = conn.execute(select(api_keys.c.id, api_keys.c.name, api_keys.c.balance, api_keys.c.held,
                                   api_keys.c.allowed_models)).all()  # fmt: skip
        entries = conn.execute(
            select(ledger_entries.c.key_id, ledger_entries.c.kind, ledger_entries.c.amount).order_by(
                ledger_entries.c.id
            )
        ).all()
    engine.dispose()
    return {
        name: (balance, held, models, [(kind, amount) for owner, kind, amount in entries if owner == id_])
        for id_, name, balance, held, models in keys
    }


def test_balances_top_ups_and_adjustments(env: dict[str, str]) -> None:
    run(["keys", "create", "--name", "free"], env)
    run(["keys", "create", "--name", "team", "--unlimited"], env)
    made = run(["keys", "create", "--name", "shop", "--balance", "2.5", "--allowed-model", "sora-2"], env)
    assert "balance 2.5" in made.stderr
    assert made.stdout.strip().startswith("vg-")
    shop = key_id(env, "shop")
    topped = run(["keys", "topup", shop, "0.75", "--note", "invoice 7", "--reference", "inv-7"], env)
    assert "balance 3.25" in topped.stderr
    run(["keys", "topup", shop, "0.75", "--reference", "inv-7"], env)  # the same reference: nothing more
    run(["keys", "adjust", shop, "-0.25", "--note", "a correction"], env)
    state = accounts(env)
    assert state["free"] == state["team"] == (None, 0, None, [])
    assert state["shop"] == (
        3_000_000,
        0,
        ["sora-2"],
        [("topup", 2_500_000), ("topup", 750_000), ("adjust", -250_000)],
    )
    listing = run(["keys", "list"], env).stdout.splitlines()
    assert listing[0].split("\t")[:6] == ["id", "name", "hint", "admin", "balance", "held"]
    assert any(line.split("\t")[1:5:3] == ["shop", "3"] for line in listing[1:]), listing


def test_bad_amounts_and_keys_are_refused(env: dict[str, str]) -> None:
    for args in (
        ["keys", "create", "--name", "x", "--balance", "ten"],
        ["keys", "create", "--name", "x", "--balance", "0.0000001"],
        ["keys", "create", "--name", "x", "--balance", "-1"],
        ["keys", "create", "--name", "x", "--balance", "1", "--unlimited"],
    ):
        refused = run(args, env, check=False)
        assert refused.returncode == 2, (args, refused.stderr)
        assert "--balance" in refused.stderr
    run(["keys", "create", "--name", "free"], env)
    free = key_id(env, "free")
    for args, code, says in (
        (["keys", "topup", free, "0"], 2, "more than 0"),
        (["keys", "topup", free, "1"], 1, "unlimited"),
        (["keys", "topup", "no-such-key", "1"], 1, "no key with id no-such-key"),
        (["keys", "adjust", free, "1", "--note", " "], 1, "note"),
    ):
        refused = run(args, env, check=False)
        assert refused.returncode == code, (args, refused.stderr)
        assert says in " ".join(refused.stderr.split()), refused.stderr
    assert accounts(env)["free"] == (None, 0, None, [])


def test_json_output_is_the_admin_apis_key_object(env: dict[str, str]) -> None:
    """`--json` on the local commands prints the key as `vidgate admin keys` does (micro-credits); the
    options are the admin commands' too (`--balance unlimited`, `--idempotency-key`)."""
    made = json.loads(run(["keys", "create", "--name", "shop", "--balance", "2.5", "--json"], env).stdout)
    assert made["object"] == "api_key" and made["key"].startswith("vg-")
    assert (made["name"], made["balance"], made["held"], made["available"]) == (
        "shop",
        2_500_000,
        0,
        2_500_000,
    )
    free = json.loads(
        run(["keys", "create", "--name", "free", "--balance", "unlimited", "--json"], env).stdout
    )
    assert free["balance"] is None and free["available"] is None

    topped = run(["keys", "topup", made["id"], "1", "--idempotency-key", "inv-1", "--json"], env)
    assert json.loads(topped.stdout)["balance"] == 3_500_000
    again = run(["keys", "topup", made["id"], "1", "--reference", "inv-1", "--json"], env)
    assert json.loads(again.stdout)["balance"] == 3_500_000  # the same idempotency key: added once
    limited = json.loads(run(["keys", "limits", made["id"], "--max-active-tasks", "3", "--json"], env).stdout)
    assert limited["max_active_tasks"] == 3 and limited["requests_per_minute"] is None

    listing = json.loads(run(["keys", "list", "--json"], env).stdout)
    assert (listing["object"], listing["has_more"]) == ("list", False)
    assert [k["name"] for k in listing["data"]] == ["shop", "free"]
    assert listing["last_id"] == free["id"] and all("key" not in k for k in listing["data"])
    revoked = json.loads(run(["keys", "revoke", free["id"], "--json"], env).stdout)
    assert revoked["id"] == free["id"] and revoked["revoked_at"] is not None
