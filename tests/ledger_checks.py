"""The ledger's invariants, checked from the database alone (docs/accounts.md):

- every key: balance = topups + adjusts - captures (NULL stays NULL for an unlimited key) and
  held = holds - captures - releases, and balance - held >= 0 unless an adjustment took it below;
- every task with a hold: exactly one hold entry equal to tasks.hold_amount; once ended, hold =
  capture + release with at most one of each (while active, neither); no entry for another task kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.store.tables import api_keys, ledger_entries, tasks

Rows = Sequence[Mapping[str, Any]]
ENDED = ("completed", "failed", "cancelled")


def check_ledger(keys: Rows, entries: Rows, task_rows: Rows) -> dict[str, dict[str, int]]:
    """Assert every invariant; returns per task {kind: amount} for further checks by the caller."""
    per_task: dict[str, dict[str, int]] = defaultdict(dict)
    per_key: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in entries:
        per_key[e["key_id"]][e["kind"]] += e["amount"]
        if e["task_id"] is not None:
            assert e["kind"] in ("hold", "capture", "release"), e
            assert e["kind"] not in per_task[e["task_id"]], f"two {e['kind']} entries for {e['task_id']}"
            assert e["amount"] > 0, e
            per_task[e["task_id"]][e["kind"]] = e["amount"]
        else:
            assert e["kind"] in ("topup", "adjust"), e
    for k in keys:
        sums = per_key[k["id"]]
        assert k["held"] == sums["hold"] - sums["capture"] - sums["release"], (k, dict(sums))
        if k["balance"] is None:
            assert sums["topup"] == sums["adjust"] == 0, k
        else:
            assert k["balance"] == sums["topup"] + sums["adjust"] - sums["capture"], (k, dict(sums))
            if sums["adjust"] >= 0:
                assert k["balance"] - k["held"] >= 0, k
    by_id = {t["id"]: t for t in task_rows}
    for t in task_rows:
        moves = per_task.get(t["id"], {})
        if not t["hold_amount"]:
            assert not moves, (t["id"], moves)
            continue
        assert moves.get("hold") == t["hold_amount"], (t["id"], moves)
        if t["status"] in ENDED:
            assert moves["hold"] == moves.get("capture", 0) + moves.get("release", 0), (t["id"], moves)
        else:
            assert set(moves) == {"hold"}, (t["id"], t["status"], moves)
    assert set(per_task) <= set(by_id), "entries for tasks that do not exist"
    return dict(per_task)


_COLUMNS = (
    select(api_keys.c.id, api_keys.c.balance, api_keys.c.held),
    select(ledger_entries),
    select(
        tasks.c.id,
        tasks.c.model,
        tasks.c.status,
        tasks.c.hold_amount,
        tasks.c.charge_amount,
        tasks.c.error_code,
    ),
)


def read_ledger_sync(conn: Connection) -> tuple[Rows, Rows, Rows]:
    keys, entries, task_rows = ([dict(r) for r in conn.execute(q).mappings()] for q in _COLUMNS)
    return keys, entries, task_rows


async def read_ledger(engine: AsyncEngine) -> tuple[Rows, Rows, Rows]:
    read: list[Rows] = []
    async with engine.connect() as conn:
        for query in _COLUMNS:
            read.append([dict(r) for r in (await conn.execute(query)).mappings()])
    keys, entries, task_rows = read
    return keys, entries, task_rows


async def assert_ledger_consistent(engine: AsyncEngine) -> dict[str, dict[str, int]]:
    return check_ledger(*(await read_ledger(engine)))
