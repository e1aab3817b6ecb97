"""Task ids: a lowercase ULID is the primary key; the wire shows it with a dialect's prefix.

The unified dialect shows `<model>:task_<ulid>` (what relay clients expect), the OpenAI dialect
`video_<ulid>`. Every route accepts any of these forms (and a bare ULID) and resolves by the ULID,
so ids never reveal an upstream's id and a task made on one dialect is readable on the other.
"""

from __future__ import annotations

import re

from ulid import ULID

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_ULID_RE = re.compile(rf"^[0-7][{_CROCKFORD}]{{25}}$")
_KNOWN_PREFIXES = ("task_", "video_")


def new_ulid() -> str:
    """A new time-sortable id, lowercase as relays show it."""
    return str(ULID()).lower()


def unified_id(model: str, ulid: str) -> str:
    return f"{model}:task_{ulid}"


def openai_id(ulid: str) -> str:
    return f"video_{ulid}"


def parse_task_id(raw: str) -> str | None:
    """The ULID inside any accepted id form, or None when `raw` is not a task id at all.

    `sora-2:task_01k6…`, `anything:task_01k6…`, `task_01k6…`, `video_01k6…` and `01k6…` all give
    `01k6…`. The model part is ignored on purpose: relays echo ids with a different prefix than the
    one they issued (a sora-2-pro task shown as `sora-2:task_…`), and clients send back what they got.
    """
    candidate = raw.strip().rsplit(":", 1)[-1].lower()
    for prefix in _KNOWN_PREFIXES:
        if candidate.startswith(prefix):
            candidate = candidate[len(prefix) :]
            break
    return candidate if _ULID_RE.match(candidate) else None
