"""The fake's journal: one entry per request that matters, so tests can prove what an upstream saw."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Dialect", "Journal", "JournalEntry"]

Dialect = Literal[
    "openai", "unified", "veo", "seedance", "dashscope", "kling", "minimax", "fal", "replicate", "openrouter",
    "files",
]  # fmt: skip


@dataclass(frozen=True)
class JournalEntry:
    """What one request did.

    `op` is one of: create (a new job was made), duplicate_create (an Idempotency-Key replay answered with
    the existing job), rejected_create (an error answered, no job), poll, list, download, delete, remix,
    cancel. `status` is the HTTP status answered; `at` is the fake's clock; `detail` holds what the request
    carried (create fields, the variant, the fault injected...).
    """

    op: str
    dialect: Dialect
    job: str | None
    key: str | None
    prompt: str | None
    status: int
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the `/_fake/journal` shape)."""
        return asdict(self)


class Journal:
    """An append-only list of `JournalEntry` (only `clear`, for a reset, removes anything)."""

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []

    def append(self, entry: JournalEntry) -> None:
        self._entries.append(entry)

    def clear(self) -> None:
        self._entries.clear()

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> JournalEntry:
        return self._entries[index]

    def entries(self, op: str | None = None, prompt: str | None = None) -> list[JournalEntry]:
        """Entries in order, optionally only those with this op and/or this exact prompt."""
        return [
            e for e in self._entries if (op is None or e.op == op) and (prompt is None or e.prompt == prompt)
        ]

    def creates(self, prompt: str | None = None) -> list[JournalEntry]:
        """Creates that made a NEW job (replays and rejections excluded)."""
        return self.entries("create", prompt)

    def count(self, op: str, prompt: str | None = None) -> int:
        """How many entries have this op (and this prompt, when given)."""
        return len(self.entries(op, prompt))

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self._entries]
