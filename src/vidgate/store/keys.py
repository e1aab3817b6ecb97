"""API keys: only a SHA-256 hash is stored; the key itself is shown once, at creation.

Keys are 256 random bits, so a fast hash is the right tool (a slow password hash protects
guessable secrets; these are not guessable). Lookup is by the hash's unique index and the match
is confirmed with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.ids import new_ulid
from vidgate.store.db import WRITE_OPTION
from vidgate.store.fast_reads import FastReads
from vidgate.store.key_cache import KeyCache
from vidgate.store.tables import api_keys

KEY_PREFIX = "vg-"
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

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """`reads` and `cache_seconds` (the API's runtime) make `authenticate` cheap: one driver call, and
    then none for `cache_seconds` (a key revoked elsewhere keeps working that long at most)."""

    def __init__(
        self, engine: AsyncEngine, *, reads: FastReads | None = None, cache_seconds: float = 0
    ) -> None:
        self.engine = engine
        self._reads = reads
        self._cache: KeyCache[ApiKey] = KeyCache(cache_seconds)

    async def create(
        self, *, name: str, is_admin: bool, now: int, limits: Mapping[str, int | None] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key: the record, and the plaintext key to show once. `limits`: any of LIMIT_FIELDS."""
        limits = _checked_limits(limits or {})
        plaintext = generate_key()
        record = ApiKey(
            id=new_ulid(),
            name=name,
            key_hint=plaintext[:8] + "…",
            is_admin=is_admin,
            created_at=now,
            revoked_at=None,
            **limits,
        )
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                await conn.execute(
                    insert(api_keys).values(
                        id=record.id,
                        name=name,
                        key_hash=hash_key(plaintext),
                        key_hint=record.key_hint,
                        is_admin=is_admin,
                        created_at=now,
                        **limits,
                    )
                )
        return record, plaintext

    async def authenticate(self, plaintext: str) -> ApiKey | None:
        """The active key matching `plaintext`, or None."""
        if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
            return None
        digest = hash_key(plaintext)
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
        return _to_key(row)

    async def list(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).mappings().all()
        return [_to_key(r) for r in rows]

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
        return None if row is None else _to_key(row)


def _checked_limits(limits: Mapping[str, int | None]) -> dict[str, int | None]:
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"unknown key limits: {sorted(unknown)}")
    for name, value in limits.items():
        if value is not None and value < 0:
            raise ValueError(f"{name} must be 0 (unlimited) or more, not {value}")
    return dict(limits)


def _to_key(row: Mapping[Any, Any]) -> ApiKey:  # a RowMapping or a fast read's dict
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
    )
