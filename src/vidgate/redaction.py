"""Removing known secrets from text that came from somewhere we do not control.

Upstreams and the proxies in front of them echo what they were sent ("Incorrect API key provided:
sk-..."), in any case, inside JSON, URL-encoded, or base64-encoded in a Basic credential, and sometimes
cut short. A `Redactor` knows a channel's secrets and removes every run of at least `WINDOW`
characters of any of those forms (the whole secret when it is shorter), case-insensitively, so a
partial echo goes too. Callers scrub first and cut to length after, never the other way round: a cut
made before the scrub could leave a secret's head that no longer matches.

Pure and dependency-free: it is used by channel settings, providers and the worker alike.
"""

from __future__ import annotations

import base64
import json
import string
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words
WINDOW = 12  # a run this long of a secret's characters is the secret, wherever it stands
# Only ASCII letters are folded, so the folded text has exactly the original's length and positions
# found in it are positions in the original (str.lower can change lengths, e.g. for "İ").
_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(text: str) -> str:
    return text.translate(_ASCII_FOLD)


def encoded_forms(secret: str) -> set[str]:
    """How a secret may appear in an echo: as is, URL-encoded, JSON-escaped, and base64 (plain and
    URL-safe) at each of the three alignments it can have inside a longer base64 string."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]}
    raw = secret.encode()
    for offset in range(3):
        padded = b"\0" * offset + raw
        # Characters that mix bits of the secret with bits of its neighbours differ from string to
        # string: keep only the characters made of the secret's bits alone.
        first = -(-8 * offset // 6)
        last = 8 * len(padded) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(padded).decode()[first:last])
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


class Redactor:
    """Removes a set of secrets (which may grow: tokens derived from them are added as they are made)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._needles: frozenset[str] = frozenset()
        self._by_secret: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            return
        needles: set[str] = set()
        for form in encoded_forms(secret):
            folded = fold(form)
            width = min(len(folded), WINDOW)
            needles.update(folded[i : i + width] for i in range(len(folded) - width + 1))
        with self._lock:  # readers use whichever whole set they saw
            self._by_secret[secret] = frozenset(needles)
            self._needles = self._needles | needles

    def discard(self, secret: str) -> None:
        """Stop removing `secret` (a derived token that has expired), keeping every other one: what a
        provider that mints short-lived tokens calls, so the set does not grow with each new token."""
        with self._lock:
            if self._by_secret.pop(secret, None) is None:
                return
            self._needles = frozenset().union(*self._by_secret.values())

    def __bool__(self) -> bool:
        return bool(self._needles)

    def redact(self, text: str) -> str:
        needles = self._needles
        if not needles or not text:
            return text
        folded = fold(text)
        spans: list[tuple[int, int]] = []
        for needle in needles:
            start = folded.find(needle)
            while start != -1:
                spans.append((start, start + len(needle)))
                start = folded.find(needle, start + 1)
        if not spans:
            return text
        spans.sort()
        pieces: list[str] = []
        done = 0
        span_start, span_end = spans[0]
        for start, end in spans[1:]:
            if start <= span_end:  # overlapping windows of one echo make one redaction
                span_end = max(span_end, end)
                continue
            pieces += [text[done:span_start], REDACTED]
            done, span_start, span_end = span_end, start, end
        pieces += [text[done:span_start], REDACTED, text[span_end:]]
        return "".join(pieces)

    def contains_secret(self, text: str) -> bool:
        return self.redact(text) != text
