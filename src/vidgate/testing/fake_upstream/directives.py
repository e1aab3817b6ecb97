"""Behaviour directives: `#name` / `#name=value` tokens in a prompt, or an `X-Fake` request header.

The prompt form lets one test scenario (one unique prompt) script its own faults; the header form lets an
operator make a whole gateway channel misbehave through that channel's extra headers. Unknown names are
kept but nothing reads them, so a typo is harmless rather than an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["HEADER", "Directives", "parse_directives"]

HEADER = "x-fake"

# A token starts a word (so "C#" or "issue#2" in prose is not one) and runs to the next whitespace.
_TOKEN = re.compile(r"(?<!\S)#([A-Za-z0-9_]+)(?:=(\S+))?")


@dataclass(frozen=True)
class Directives:
    """A read-only name -> value map (value None for a bare `#name`), with typed accessors."""

    values: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))

    def has(self, name: str) -> bool:
        """True when the directive is present, with or without a value."""
        return name in self.values

    def text(self, name: str) -> str | None:
        """The raw value, or None when absent or bare."""
        return self.values.get(name)

    def count(self, name: str) -> int:
        """A "first N" count: the integer value, 1 for a bare `#name`, 0 when absent or not a number."""
        if name not in self.values:
            return 0
        raw = self.values[name]
        if raw is None:
            return 1
        try:
            return max(0, int(raw))
        except ValueError:
            return 0

    def number(self, name: str, default: float) -> float:
        """A non-negative finite number (seconds, milliseconds), else `default`."""
        raw = self.values.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            return default
        return value if math.isfinite(value) and value >= 0 else default


def _from_prompt(prompt: str) -> dict[str, str | None]:
    return {m.group(1).lower(): m.group(2) for m in _TOKEN.finditer(prompt)}


def _from_header(header: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for part in re.split(r"[;,]", header):
        part = part.strip().lstrip("#")
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if name:
            found[name] = value.strip() if sep else None
    return found


def parse_directives(prompt: str | None, *headers: str | None) -> Directives:
    """Directives from a prompt and `X-Fake` header values (e.g. the create's, then a poll's).

    A later header wins a name an earlier one set, and the prompt wins over every header: it is the most
    specific source (one scenario) while a header is channel-wide configuration.
    """
    merged: dict[str, str | None] = {}
    for header in headers:
        if header:
            merged.update(_from_header(header))
    if prompt:
        merged.update(_from_prompt(prompt))
    return Directives(MappingProxyType(merged))
