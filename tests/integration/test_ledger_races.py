"""Terminal transitions racing on one task: a worker whose lease expired, the worker that took the task
over and the client's cancel all try to end it at once, each through its own engine (as separate
processes would). Exactly one ends it, and its hold is resolved once: hold = capture + release."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.helpers import SPEC
from tests.ledger_checks import assert_ledger_consistent
from vidgate.domain.tasks import Step, TaskStatus
from vidgate.store import db
from vidgate.store.keys import KeyStore
from vidgate.store.tasks import TaskStore

pytestmark = pytest.mark.anyio
HOLD = 700_000


async def test_only_one_terminal_transition_resolves_the_hold(db_url: str) -> None:
    await db.upgrade(db_url)
    engines = [db.create_engine(db_url) for _ in range(3)]
    try:
        stale_store, current_store, client_store = (TaskStore(e) for e in engines)
        key, _ = await KeyStore(engines[0]).create(name="racer", is_admin=False, now=1, balance=100 * HOLD)
        winners: Counter[str] = Counter()
        for round_ in range(12):
            now = 1_000 + round_
            task = await client_store.create(
                SPEC, owner=key.id, dialect="openai", now=now, deadline_ms=3_600_000, hold=HOLD
            )
            # The first worker admits the task to a channel and then stalls: its lease has already run
            # out when the second worker claims the task.
            [stale] = await stale_store.claim_due(worker="w1", limit=1, lease_ms=-60_000)
            stale = await stale_store.admit(
                stale,
                channel="relay",
                max_concurrent=None,
                now=now,
                status=TaskStatus.PROCESSING,
                known_healthy=True,
                charge=HOLD // 2,
            )
            assert not isinstance(stale, str)
            [current] = await current_store.claim_due(worker="w2", limit=1, lease_ms=60_000)
            ends = [
                stale_store.finish_step(stale, now=now, next_step=Step.DONE, status=TaskStatus.COMPLETED),
                current_store.finish_step(
                    current,
                    now=now,
                    next_step=Step.DONE,
                    status=TaskStatus.COMPLETED if round_ % 2 else TaskStatus.FAILED,
                    changes={} if round_ % 2 else {"error_code": "boom", "error_message": "it broke"},
                ),
                client_store.cancel(task.id, owner=key.id, now=now),
            ]
            reverse = round_ % 3 == 0
            if reverse:
                ends.reverse()  # a different order of arrival
            results = await asyncio.gather(*ends, return_exceptions=True)
            final = await client_store.get(task.id)
            assert final is not None and final.status.is_terminal
            winners[final.status.value] += 1
            assert results[2 if reverse else 0] is None  # the stale worker never wins
            events = [
                e
                for e in await client_store.events(task.id)
                if e.to_status in ("completed", "failed", "cancelled")
            ]
            assert len(events) == 1, events
        moves = await assert_ledger_consistent(engines[0])
        assert len(moves) == 12
        for entry in moves.values():
            assert entry["hold"] == entry.get("capture", 0) + entry.get("release", 0) == HOLD
        account = await KeyStore(engines[0]).get(key.id)
        assert account is not None and account.held == 0
        captured = sum(m.get("capture", 0) for m in moves.values())
        assert account.balance == 100 * HOLD - captured
        assert captured == winners["completed"] * (HOLD // 2)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_database_refuses_to_change_or_delete_a_ledger_entry(db_url: str) -> None:
    from sqlalchemy import delete, update
    from sqlalchemy.exc import DBAPIError

    from vidgate.store.tables import ledger_entries

    await db.upgrade(db_url)
    engine = db.create_engine(db_url)
    try:
        key, _ = await KeyStore(engine).create(name="payer", is_admin=False, now=1, balance=5)
        for change in (update(ledger_entries).values(amount=1_000_000), delete(ledger_entries)):
            with pytest.raises(DBAPIError, match="never changed or deleted"):
                async with engine.begin() as conn:
                    await conn.execute(change)
        entries, _ = await KeyStore(engine).ledger(key.id)
        assert [(e.kind, e.amount) for e in entries] == [("topup", 5)]
    finally:
        await engine.dispose()
