"""API keys: only a SHA-256 hash is stored; the key itself is shown once, at creation.

Keys are 256 random bits, so a fast hash is the right tool (a slow password hash protects
guessable secrets; these are not guessable). Lookup is by the hash's unique index and the match
is confirmed with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.errors import Conflict
from vidgate.ids import new_ulid
from vidgate.money import MAX_MICROS
from vidgate.store import ledger
from vidgate.store.db import WRITE_OPTION, write_transaction
from vidgate.store.fast_reads import FastReads
from vidgate.store.key_cache import KeyCache
from vidgate.store.ledger import LedgerEntry
from vidgate.store.tables import api_keys

KEY_PREFIX = "vg-"
LedgerPage = tuple[list[LedgerEntry], bool]  # entries, and whether more follow
LIMIT_FIELDS = ("requests_per_minute", "creates_per_minute", "max_active_tasks")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    key_hint: str
    is_admin: bool
    created_at: int
    revoked_at: int | None
    # Per-key limits (see docs/rate-limits.md): None = the settings' default, 0 = unlimited for this key.
    requests_per_minute: int | None = None
    creates_per_minute: int | None = None
    max_active_tasks: int | None = None
    # The account (docs/accounts.md), in micro-credits: balance None = unlimited; held = open holds.
    balance: int | None = None
    held: int = 0
    allowed_models: tuple[str, ...] | None = None  # None = every model
    # Which webhook secret is current (signing.key_webhook_secret); a rotation adds 1.
    webhook_secret_generation: int = 0

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def available(self) -> int | None:
        """What new tasks may still hold (None: unlimited). A cached key's figure may be seconds old;
        a create checks the database's."""
        return None if self.balance is None else self.balance - self.held

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """`reads` and `cache_seconds` (the API's runtime) make `authenticate` cheap: one driver call, and
    then none for `cache_seconds` (a key revoked elsewhere keeps working that long at most on the
    routes that use the cache; the admin API asks for a fresh read)."""

    def __init__(
        self, engine: AsyncEngine, *, reads: FastReads | None = None, cache_seconds: float = 0
    ) -> None:
        self.engine = engine
        self._reads = reads
        self._cache: KeyCache[ApiKey] = KeyCache(cache_seconds)

    async def create(
        self,
        *,
        name: str,
        is_admin: bool,
        now: int,
        limits: Mapping[str, int | None] | None = None,
        balance: int | None = None,
        allowed_models: Sequence[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key: the record, and the plaintext key to show once. `limits`: any of LIMIT_FIELDS;
        `balance` in micro-credits (None: unlimited); `allowed_models` (None: every model)."""
        limits = _checked_limits(limits or {})
        _check_amount(balance, "balance", allow_zero=True)
        models = _checked_models(allowed_models)
        plaintext = generate_key()
        record = ApiKey(
            id=new_ulid(),
            name=name,
            key_hint=plaintext[:8] + "…",
            is_admin=is_admin,
            created_at=now,
            revoked_at=None,
            requests_per_minute=limits.get("requests_per_minute"),
            creates_per_minute=limits.get("creates_per_minute"),
            max_active_tasks=limits.get("max_active_tasks"),
            balance=balance,
            allowed_models=models,
        )
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=record.id,
                    name=name,
                    key_hash=hash_key(plaintext),
                    key_hint=record.key_hint,
                    is_admin=is_admin,
                    created_at=now,
                    balance=None if balance is None else 0,  # the opening top-up below adds it
                    held=0,
                    allowed_models=None if models is None else list(models),
                    **limits,
                )
            )
            if balance:
                # The opening balance is a top-up like any other, so for every key, at every moment,
                # balance = topups + adjusts - captures, from the ledger alone.
                await ledger.credit(
                    conn,
                    key_id=record.id,
                    kind=ledger.TOPUP,
                    amount=balance,
                    now=now,
                    reference=None,
                    note="opening balance",
                )
        return record, plaintext

    async def get(self, key_id: str) -> ApiKey | None:
        """A key by id, revoked or not (for operators; requests authenticate by the key itself)."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        return None if row is None else row_to_key(row)

    async def authenticate(self, plaintext: str, *, fresh: bool = False) -> ApiKey | None:
        """The active key matching `plaintext`, or None. `fresh` reads the key's row now, past the
        cache (and leaves the cache as it is): for routes where a key revoked a moment ago in another
        process must already be refused (the admin API)."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
            return None
        digest = hash_key(plaintext)
        if fresh:
            return await self._active_by_hash(digest)
        return await self._cache.get(digest, lambda: self._active_by_hash(digest))

    async def _active_by_hash(self, digest: str) -> ApiKey | None:
        row: Mapping[str, Any] | None
        if self._reads is not None:
            row = await self._reads.key_by_hash(digest)
        else:
            async with self.engine.connect() as conn:
                query = select(api_keys).where(api_keys.c.key_hash == digest)
                found = (await conn.execute(query)).mappings().first()
            row = dict(found) if found is not None else None
        if row is None or not hmac.compare_digest(row["key_hash"], digest) or row["revoked_at"] is not None:
            return None
        return row_to_key(row)

    async def list(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).mappings().all()
        return [row_to_key(r) for r in rows]

    async def revoke(self, key_id: str, *, now: int) -> bool:
        """Revoke a key by id; False when no active key has that id."""
        query = (
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                revoked = (await conn.execute(query)).rowcount == 1
        self._cache.forget(lambda key: key.id == key_id)
        return revoked

    async def set_limits(self, key_id: str, limits: Mapping[str, int | None]) -> ApiKey | None:
        """Change some of a key's limits (None = back to the default); the key after, or None when no
        key has that id. API processes see the change when their cached copy of the key expires."""
        limits = _checked_limits(limits)
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                if limits:
                    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**limits))
                row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        self._cache.forget(lambda key: key.id == key_id)
        return None if row is None else row_to_key(row)

    async def set_allowed_models(self, key_id: str, models: Sequence[str] | None) -> ApiKey | None:
        """Limit the key to these models (None: every model); the key after, or None when no key has
        that id. Applies to creates once API processes' cached copy of the key expires."""
        checked = _checked_models(models)
        query = (
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(allowed_models=None if checked is None else list(checked))
        )
        async with write_transaction(self.engine) as conn:
            await conn.execute(query)
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        self._cache.forget(lambda key: key.id == key_id)
        return None if row is None else row_to_key(row)

    async def rotate_webhook_secret(self, key_id: str) -> ApiKey | None:
        """Make the key's next webhook secret the current one (the previous one signs nothing more);
        the key after, or None when no key has that id. Every process signs with the new secret from
        the next delivery on: the worker reads the generation when it sends."""
        query = (
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(webhook_secret_generation=api_keys.c.webhook_secret_generation + 1)
        )
        async with write_transaction(self.engine) as conn:
            await conn.execute(query)
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        self._cache.forget(lambda key: key.id == key_id)
        return None if row is None else row_to_key(row)

    async def topup(
        self, key_id: str, amount: int, *, now: int, reference: str | None = None, note: str | None = None
    ) -> ApiKey | None:
        """Add `amount` micro-credits to a key's balance (a `topup` entry). With `reference` (an
        idempotency key), a retry enters nothing again and answers with the key; the same reference with
        another amount is a 409. None: no key has that id. An unlimited key has no balance to add to: 409.
        A balance that would pass the cap (vidgate.money.MAX_BALANCE) is refused: InvalidRequest, 400."""
        _check_amount(amount, "amount", allow_zero=False)
        return await self._credit(key_id, ledger.TOPUP, amount, now=now, reference=reference, note=note)

    async def adjust(
        self, key_id: str, amount: int, *, now: int, note: str, reference: str | None = None
    ) -> ApiKey | None:
        """Correct a key's balance by `amount` (positive or negative) with an `adjust` entry saying why:
        entries are never changed, so a correction is a new one. The balance may go below what the key
        holds; it then creates nothing until topped up. Within the cap (docs/accounts.md): the balance
        never above it, the available credits never below minus it (else InvalidRequest, `amount`)."""
        if amount == 0 or abs(amount) > MAX_MICROS:
            raise ValueError(f"an adjustment must be a non-zero amount within ±{MAX_MICROS} micro-credits")
        if not note.strip():
            raise ValueError("an adjustment needs a note saying why")
        return await self._credit(key_id, ledger.ADJUST, amount, now=now, reference=reference, note=note)

    async def _credit(
        self, key_id: str, kind: str, amount: int, *, now: int, reference: str | None, note: str | None
    ) -> ApiKey | None:
        async with write_transaction(self.engine) as conn:
            query = select(api_keys).where(api_keys.c.id == key_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()  # a concurrent retry of the same reference waits here
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                return None
            if row["balance"] is None:
                raise Conflict(
                    "This key is unlimited: it keeps no balance to add to.",
                    param="amount",
                    code="key_unlimited",
                )
            entered = await ledger.credit(
                conn, key_id=key_id, kind=kind, amount=amount, now=now, reference=reference, note=note
            )
            if not entered:
                assert reference is not None
                earlier = await ledger.entry_by_reference(conn, key_id, reference)
                if earlier is None or earlier.amount != amount or earlier.kind != kind:
                    raise Conflict(
                        "This Idempotency-Key was already used for another change of this key's balance.",
                        param="Idempotency-Key",
                        code="idempotency_key_reused",
                    )
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        assert row is not None
        return row_to_key(row)

    async def ledger(self, key_id: str, *, after: int | None = None, limit: int = 100) -> LedgerPage:
        """One page of the key's ledger entries, oldest first, and whether more follow."""
        async with self.engine.connect() as conn:
            return await ledger.entries(conn, key_id, after=after, limit=limit)


def _checked_limits(limits: Mapping[str, int | None]) -> dict[str, int | None]:
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"unknown key limits: {sorted(unknown)}")
    for name, value in limits.items():
        if value is not None and value < 0:
            raise ValueError(f"{name} must be 0 (unlimited) or more, not {value}")
    return dict(limits)


def _check_amount(amount: int | None, what: str, *, allow_zero: bool) -> None:
    if amount is None:
        return
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"{what} must be a whole number of micro-credits")
    if amount < 0 or (amount == 0 and not allow_zero) or amount > MAX_MICROS:
        low = 0 if allow_zero else 1
        raise ValueError(f"{what} must be from {low} to {MAX_MICROS} micro-credits, not {amount}")


def _checked_models(models: Sequence[str] | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    if isinstance(models, str) or any(not isinstance(m, str) or not m.strip() for m in models):
        raise ValueError("allowed_models must be a list of model names")
    return tuple(dict.fromkeys(m.strip() for m in models))


def row_to_key(row: Mapping[Any, Any]) -> ApiKey:  # a RowMapping or a fast read's dict
    return ApiKey(
        id=row["id"],
        name=row["name"],
        key_hint=row["key_hint"],
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        requests_per_minute=row["requests_per_minute"],
        creates_per_minute=row["creates_per_minute"],
        max_active_tasks=row["max_active_tasks"],
        balance=row["balance"],
        held=row["held"],
        allowed_models=None if row["allowed_models"] is None else tuple(row["allowed_models"]),
        webhook_secret_generation=row["webhook_secret_generation"],
    )


async def webhook_secret_generation(engine: AsyncEngine, key_id: str) -> int:
    """The key's current webhook secret generation, read now (never a cached key's): what the worker
    signs a webhook with when it sends it, so a rotation applies from the next delivery on."""
    query = select(api_keys.c.webhook_secret_generation).where(api_keys.c.id == key_id)
    async with engine.connect() as conn:
        generation = (await conn.execute(query)).scalar_one_or_none()
    return 0 if generation is None else int(generation)
