"""The ledger: every movement of a key's credits, written in the transaction that causes it.

The rules (docs/accounts.md):
- A create holds the task's maximum price in the transaction that inserts the task: the key's `held`
  grows only if `balance - held` covers it, in one conditional UPDATE, so concurrent creates on
  any number of processes can never overdraw a key (the row is locked by the UPDATE itself).
- The transition that ends a task resolves its hold in the transaction of the compare-and-set that ends
  it: a `capture` of what it costs and a `release` of the rest (hold = capture + release). A crash
  leaves both the status change and the money move, or neither; a second terminal transition cannot
  happen (the CAS), and a resolution cannot be entered twice (UNIQUE (task, attempt, kind)).
- Entries are only ever inserted. A correction is a new `adjust` entry; a top-up is a `topup` entry.

Per key: balance = balance at creation + topups + adjusts - captures, and held = holds - captures -
releases. A key without a balance (unlimited) keeps `balance` NULL but its entries all the same, so
its usage is known.

The cap (vidgate.money.MAX_BALANCE, also CHECK constraints in the database): held stays within 0..cap
and balance within ±cap. A hold never takes held past the cap (for a key with a balance, `balance -
held >= amount` already ensures it); a top-up or adjustment never takes the balance past the cap, nor
the key's available credits (balance - held) below -cap. Captures leave available as it is and
releases raise it, so with held >= 0 the balance can never go below -cap either: the end of a task,
which must not fail, never meets a constraint. Every bound is a condition of the UPDATE that moves the
money, so concurrent changes cannot pass it together.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnClause,
    Update,
    bindparam,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.domain.tasks import TaskStatus
from vidgate.errors import InsufficientQuota, InvalidRequest
from vidgate.money import MAX_BALANCE, MAX_BALANCE_CREDITS, format_credits
from vidgate.store.tables import api_keys, ledger_entries

HOLD, CAPTURE, RELEASE, TOPUP, ADJUST = "hold", "capture", "release", "topup", "adjust"
# Every task has one hold today; the attempt number leaves room for a task held again (a resubmission
# that is billed anew) without a schema change.
FIRST_ATTEMPT = 1


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    key_id: str
    task_id: str | None
    attempt: int
    kind: str
    amount: int
    created_at: int
    reference: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    """Which ended tasks are refunded (their hold released) rather than charged.

    A completed task is charged. A cancelled one is refunded. A failed one is refunded, unless its error
    code is in `charged_failures` (by default none; `content_policy` is there when the operator sets
    `billing.refund_moderation = false`, because the upstream bills a refused prompt too)."""

    charged_failures: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls, *, refund_moderation: bool, charged_failures: Collection[str] = ()
    ) -> RefundPolicy:
        codes = set(charged_failures)
        if not refund_moderation:
            codes.add("content_policy")
        return cls(frozenset(codes))

    def charge(self, *, hold: int, charge: int | None, status: TaskStatus, error_code: str | None) -> int:
        """What an ended task costs out of its `hold`: its price on the channel (`charge`, never more
        than the hold), or nothing."""
        charged = status is TaskStatus.COMPLETED or (
            status is TaskStatus.FAILED and error_code in self.charged_failures
        )
        return min(hold, hold if charge is None else charge) if charged else 0


# The cap as SQL literals, not parameters: create_batch.py runs HOLD_STATEMENT's SQL with key_id and
# amount alone. Each bound is written as `column <= cap - :amount`, never `column + :amount <= cap`: the
# subtraction of two numbers within the cap cannot overflow a BIGINT, whatever amount is sent.
_CAP: ColumnClause[int] = literal_column(str(MAX_BALANCE), BigInteger())
_FLOOR: ColumnClause[int] = literal_column(str(-MAX_BALANCE), BigInteger())
PAST_THE_CAP = "balance_limit_exceeded"

# Raise the key's `held` by `:amount` if `balance - held` covers it (or the key is unlimited), and never
# past the cap: one conditional UPDATE, so it is atomic under concurrent creates. Params: key_id, amount.
# A row is returned when the hold was made. Built once: it runs on every priced create.
HOLD_STATEMENT: Update = (
    update(api_keys)
    .where(
        api_keys.c.id == bindparam("key_id"),
        or_(api_keys.c.balance.is_(None), api_keys.c.balance - api_keys.c.held >= bindparam("amount")),
        api_keys.c.held <= _CAP - bindparam("amount"),
    )
    .values(held=api_keys.c.held + bindparam("amount"))
    .returning(api_keys.c.id)
)

# Add `:amount` (negative for a downward adjustment) to a key's balance, unless the balance would pass
# the cap or available (balance - held) would go below -cap. Params: key_id, amount. A row is returned
# when the change was made; an unlimited key (balance NULL) matches no row (its caller refuses it first).
CREDIT_STATEMENT: Update = (
    update(api_keys)
    .where(
        api_keys.c.id == bindparam("key_id"),
        api_keys.c.balance <= _CAP - bindparam("amount"),
        api_keys.c.balance - api_keys.c.held >= _FLOOR - bindparam("amount"),
    )
    .values(balance=api_keys.c.balance + bindparam("amount"))
    .returning(api_keys.c.id)
)


def hold_entry(*, key_id: str, task_id: str, amount: int, now: int) -> dict[str, Any]:
    """The `hold` entry's row, for the transaction that made the hold."""
    return {"key_id": key_id, "task_id": task_id, "attempt": FIRST_ATTEMPT, "kind": HOLD,
            "amount": amount, "created_at": now}  # fmt: skip


def insufficient(amount: int, available: int | None) -> InsufficientQuota:
    """The refusal of a hold. `available` None: an unlimited key, refused only by the cap on held."""
    if available is None:
        return InsufficientQuota(
            f"This request costs up to {format_credits(amount)} credits, and with what this API key "
            f"already holds for its running tasks that is more than the {MAX_BALANCE_CREDITS} credits "
            "a key may hold at once. Wait for some of them to end.",
        )
    return InsufficientQuota(
        f"This request costs up to {format_credits(amount)} credits and this API key has "
        f"{format_credits(available)} available. Top the key up, or ask its operator to.",
    )


def past_the_cap(amount: int, balance: int, held: int) -> InvalidRequest:
    """The refusal of a top-up or adjustment of `amount` on a key with this balance and held."""
    cap = MAX_BALANCE_CREDITS
    if balance + amount > MAX_BALANCE:
        message = (
            f"A key's balance may not pass {cap} credits: this key has {format_credits(balance)}, and "
            f"{format_credits(amount)} more would make {format_credits(balance + amount)}."
        )
    else:
        available = balance - held
        message = (
            f"A key's available credits (balance less held) may not go below -{cap} credits: this key "
            f"has {format_credits(available)} available, and {format_credits(amount)} would make "
            f"{format_credits(available + amount)}."
        )
    return InvalidRequest(message, param="amount", code=PAST_THE_CAP)


async def hold(conn: AsyncConnection, *, key_id: str, task_id: str, amount: int, now: int) -> None:
    """Inside the create's transaction: hold `amount` on the key for `task_id`, or raise
    InsufficientQuota when its balance (less what it already holds) cannot cover it."""
    if (await conn.execute(HOLD_STATEMENT, {"key_id": key_id, "amount": amount})).first() is None:
        raise insufficient(amount, await available(conn, key_id))
    await conn.execute(
        insert(ledger_entries).values(hold_entry(key_id=key_id, task_id=task_id, amount=amount, now=now))
    )


async def resolve_hold(
    conn: AsyncConnection, *, key_id: str, task_id: str, hold_amount: int, capture: int, now: int
) -> None:
    """Inside the transaction that ends the task: capture `capture` of its hold and release the rest.
    An entry already made (which the task's compare-and-set should make impossible) is not made again,
    and then its money does not move again either."""
    assert 0 <= capture <= hold_amount
    moved_capture = capture > 0 and await _enter_once(conn, key_id, task_id, CAPTURE, capture, now)
    release = hold_amount - capture
    moved_release = release > 0 and await _enter_once(conn, key_id, task_id, RELEASE, release, now)
    unheld = (capture if moved_capture else 0) + (release if moved_release else 0)
    if unheld:
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(
                held=api_keys.c.held - unheld,
                # NULL (unlimited) stays NULL: NULL - x is NULL.
                balance=api_keys.c.balance - (capture if moved_capture else 0),
            )
        )


async def credit(
    conn: AsyncConnection,
    *,
    key_id: str,
    kind: str,
    amount: int,
    now: int,
    reference: str | None,
    note: str | None,
) -> bool:
    """A top-up or an adjustment of a key's balance. False when `reference` was already entered for
    this key (an idempotent retry): nothing moves then. InvalidRequest (400 naming `amount`) when it
    would take the account past the cap; the entry just made goes with the caller's rolled-back
    transaction. The caller checks that the key has a balance."""
    assert kind in (TOPUP, ADJUST)
    values = {
        "key_id": key_id,
        "task_id": None,
        "attempt": FIRST_ATTEMPT,
        "kind": kind,
        "amount": amount,
        "created_at": now,
        "reference": reference,
        "note": note,
    }
    if not await _insert_unless_present(conn, values):
        return False
    if (await conn.execute(CREDIT_STATEMENT, {"key_id": key_id, "amount": amount})).first() is None:
        query = select(api_keys.c.balance, api_keys.c.held).where(api_keys.c.id == key_id)
        row = (await conn.execute(query)).one()
        raise past_the_cap(amount, int(row[0]), int(row[1]))
    return True


async def entry_by_reference(conn: AsyncConnection, key_id: str, reference: str) -> LedgerEntry | None:
    query = select(ledger_entries).where(
        ledger_entries.c.key_id == key_id, ledger_entries.c.reference == reference
    )
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else to_entry(row)


async def entries(
    conn: AsyncConnection, key_id: str, *, after: int | None, limit: int
) -> tuple[list[LedgerEntry], bool]:
    """One page of a key's entries, oldest first, and whether more follow."""
    query = (
        select(ledger_entries)
        .where(
            ledger_entries.c.key_id == key_id, *([ledger_entries.c.id > after] if after is not None else [])
        )
        .order_by(ledger_entries.c.id)
        .limit(limit + 1)
    )
    rows = (await conn.execute(query)).mappings().all()
    return [to_entry(r) for r in rows[:limit]], len(rows) > limit


async def task_entries(conn: AsyncConnection, task_id: str) -> list[LedgerEntry]:
    query = select(ledger_entries).where(ledger_entries.c.task_id == task_id).order_by(ledger_entries.c.id)
    return [to_entry(r) for r in (await conn.execute(query)).mappings().all()]


def to_entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        key_id=row["key_id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        kind=row["kind"],
        amount=row["amount"],
        created_at=row["created_at"],
        reference=row["reference"],
        note=row["note"],
    )


async def _enter_once(
    conn: AsyncConnection, key_id: str, task_id: str, kind: str, amount: int, now: int
) -> bool:
    values = {
        "key_id": key_id,
        "task_id": task_id,
        "attempt": FIRST_ATTEMPT,
        "kind": kind,
        "amount": amount,
        "created_at": now,
    }
    return await _insert_unless_present(conn, values)


async def _insert_unless_present(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: True when the entry is new. Never an IntegrityError, which
    would abort the whole transaction on PostgreSQL."""
    build = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    query = build(ledger_entries).values(**values).on_conflict_do_nothing().returning(ledger_entries.c.id)
    return (await conn.execute(query)).first() is not None


async def available(conn: AsyncConnection, key_id: str) -> int | None:
    """What the key may still hold (None: unlimited)."""
    query = select(api_keys.c.balance, api_keys.c.held).where(api_keys.c.id == key_id)
    row = (await conn.execute(query)).first()
    if row is None or row[0] is None:
        return None
    return int(row[0]) - int(row[1])
