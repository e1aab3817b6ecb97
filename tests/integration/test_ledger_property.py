"""Random task histories against the real store: creates at random prices, top-ups, adjustments,
completions at random prices, failures (some of them moderation refusals), cancels and deletes.

After every history: the sum of the key's entries is its balance (its opening balance is an entry
too), what it holds is the sum of its active tasks' holds, every ended task's hold is capture +
release, and a create was refused (402) exactly when the balance left could not cover its price; the
expected balance is computed here independently, from the tasks' outcomes and the refund policy."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import SPEC
from tests.ledger_checks import assert_ledger_consistent
from vidgate.domain.tasks import Step, TaskStatus
from vidgate.errors import InsufficientQuota
from vidgate.store import db
from vidgate.store.keys import KeyStore
from vidgate.store.ledger import RefundPolicy
from vidgate.store.task_rows import Claim
from vidgate.store.tasks import TaskStore

UNIT = 100_000  # 0.1 credit
index = st.integers(0, 15)
operation = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 6)),
    st.tuples(st.just("topup"), st.integers(1, 8)),
    st.tuples(st.just("adjust"), st.integers(-4, 4).filter(bool)),
    st.tuples(st.just("complete"), index, st.integers(0, 100)),
    st.tuples(st.just("fail"), index, st.sampled_from(["boom", "content_policy"])),
    st.tuples(st.just("cancel"), index),
    st.tuples(st.just("delete"), index),
)


@dataclass
class Oracle:
    balance: int
    holds: dict[str, int] = field(default_factory=dict)  # active tasks' holds
    ended: dict[str, tuple[int, int]] = field(default_factory=dict)  # task -> (hold, charged)


async def run_history(url: str, opening: int, ops: list[tuple], refund_moderation: bool) -> None:
    policy = RefundPolicy.from_settings(refund_moderation=refund_moderation)
    engine = db.create_engine(url)
    try:
        store, keys = TaskStore(engine, refunds=policy), KeyStore(engine)
        key, _ = await keys.create(name="history", is_admin=False, now=1, balance=opening)
        oracle, order, claims, charges = Oracle(opening), [], {}, {}
        now = 10
        for op in ops:
            now += 1
            kind = op[0]
            if kind == "create":
                price = op[1] * UNIT
                available = oracle.balance - sum(oracle.holds.values())
                try:
                    task = await store.create(
                        SPEC, owner=key.id, dialect="openai", now=now, deadline_ms=3_600_000, hold=price
                    )
                except InsufficientQuota:
                    assert price > available, (price, available)
                    continue
                assert price == 0 or price <= available, (price, available)
                order.append(task.id)
                oracle.holds[task.id] = price
                continue
            if kind in ("topup", "adjust"):
                amount = op[1] * UNIT
                if kind == "topup":
                    await keys.topup(key.id, amount, now=now)
                else:
                    await keys.adjust(key.id, amount, now=now, note="property test")
                oracle.balance += amount
                continue
            if not order:
                continue
            task_id = order[op[1] % len(order)]
            task = await store.get(task_id, include_deleted=True)
            assert task is not None
            if kind in ("cancel", "delete"):
                if kind == "cancel" and not task.status.is_terminal:
                    await store.cancel(task_id, owner=key.id, now=now)
                elif kind == "delete" and task.deleted_at is None:
                    await store.soft_delete(task_id, owner=key.id, now=now)
                if task_id in oracle.holds:  # an active task ended by the client: refunded
                    oracle.ended[task_id] = (oracle.holds.pop(task_id), 0)
                continue
            if task.status.is_terminal:
                continue
            for claim in await store.claim_due(worker="w", limit=1000, lease_ms=3_600_000):
                claims[claim.task.id] = claim
            claim: Claim | str | None = claims.pop(task_id)
            assert isinstance(claim, Claim)
            hold = oracle.holds[task_id]
            charge = charges.setdefault(task_id, hold * (op[2] if kind == "complete" else 50) // 100)
            claim = await store.admit(
                claim, channel="c", max_concurrent=None, now=now, status=TaskStatus.PROCESSING,
                known_healthy=True, charge=charge,
            )  # fmt: skip
            assert isinstance(claim, Claim)
            if kind == "complete":
                ended = await store.finish_step(
                    claim, now=now, next_step=Step.DONE, status=TaskStatus.COMPLETED
                )
                charged = charge
            else:
                code = op[2]
                ended = await store.finish_step(
                    claim, now=now, next_step=Step.DONE, status=TaskStatus.FAILED,
                    changes={"error_code": code, "error_message": "x"},
                )  # fmt: skip
                charged = charge if (code == "content_policy" and not refund_moderation) else 0
            assert ended is not None and ended.status.is_terminal
            oracle.ended[task_id] = (oracle.holds.pop(task_id), charged)
            oracle.balance -= charged
        # End what is left, so the next history starts with no active task in the database.
        for task_id in list(oracle.holds):
            await store.cancel(task_id, owner=key.id, now=now + 1)
            oracle.ended[task_id] = (oracle.holds.pop(task_id), 0)
        account = await keys.get(key.id)
        assert account is not None
        assert (account.balance, account.held) == (oracle.balance, 0)
        moves = await assert_ledger_consistent(engine)
        for task_id, (hold, charged) in oracle.ended.items():
            if hold:
                assert moves[task_id].get("capture", 0) == charged, (task_id, moves[task_id])
                assert moves[task_id].get("release", 0) == hold - charged
        entries, _ = await keys.ledger(key.id, limit=10_000)
        signed = {"topup": 1, "adjust": 1, "capture": -1, "hold": 0, "release": 0}
        assert sum(signed[e.kind] * e.amount for e in entries) == account.balance
    finally:
        await engine.dispose()


@pytest.fixture
def migrated(db_url: str) -> str:
    db.upgrade_sync(db_url)
    return db_url


def test_random_histories_keep_the_ledger_exact(migrated: str) -> None:
    examples = 40 if migrated.startswith("sqlite") else 15

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        opening=st.integers(0, 20).map(lambda n: n * UNIT),
        ops=st.lists(operation, max_size=30),
        refund_moderation=st.booleans(),
    )
    def history(opening: int, ops: list[tuple], refund_moderation: bool) -> None:
        anyio.run(run_history, migrated, opening, ops, refund_moderation)

    history()
