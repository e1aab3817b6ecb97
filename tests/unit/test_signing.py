"""Per-key webhook secrets (vidgate.signing): what they are derived from, and the receiver's check as
docs/api.md §6 prints it, run as printed against what the worker signs."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from vidgate import signing

API_MD = Path(__file__).parents[2] / "docs" / "api.md"
SECRET_FORM = re.compile(r"whsec_[A-Za-z0-9_-]{43}")


def test_a_keys_secret_depends_on_the_server_secret_the_key_and_its_generation() -> None:
    secret = signing.key_webhook_secret(b"server", "01kb7y3m0c4v6f0c2x1r9d8e7w", 0)
    assert SECRET_FORM.fullmatch(secret)
    assert secret == signing.key_webhook_secret(b"server", "01kb7y3m0c4v6f0c2x1r9d8e7w", 0)  # stable
    others = {
        signing.key_webhook_secret(b"server", "01kb7y3m0c4v6f0c2x1r9d8e7x", 0),  # another key
        signing.key_webhook_secret(b"server", "01kb7y3m0c4v6f0c2x1r9d8e7w", 1),  # rotated
        signing.key_webhook_secret(b"other", "01kb7y3m0c4v6f0c2x1r9d8e7w", 0),  # another server secret
    }
    assert secret not in others and len(others) == 3


def test_a_signature_verifies_with_its_keys_secret_only() -> None:
    mine = signing.key_webhook_secret(b"server", "a", 0)
    theirs = signing.key_webhook_secret(b"server", "b", 0)
    body = b'{"id":"evt_1"}'
    header = signing.webhook_signature(mine, 1000, body)
    assert signing.verify_webhook(mine, header, body, now_s=1100)
    assert signing.verify_webhook(mine.encode(), header, body, now_s=1100)
    assert not signing.verify_webhook(theirs, header, body, now_s=1100)
    assert not signing.verify_webhook(b"server", header, body, now_s=1100)


def receiver_example() -> Any:
    """The `verify` function of api.md §6's receiver example, defined by running the block as printed."""
    text = API_MD.read_text()
    section = text[text.index("## 6. Webhooks") :]
    start = section.index("```python\n") + len("```python\n")
    namespace: dict[str, Any] = {}
    exec(section[start : section.index("```", start)], namespace)  # the documentation's own code
    return namespace["verify"]


def test_the_documented_receiver_check_accepts_what_vidgate_signs() -> None:
    verify = receiver_example()
    secret = signing.key_webhook_secret(b"server", "01kb7y3m0c4v6f0c2x1r9d8e7w", 3)
    body = b'{"id":"evt_01kb7z","object":"event"}'
    header = signing.webhook_signature(secret, int(time.time()), body)
    assert verify(secret, header, body)
    assert not verify(secret, header, body + b" ")
    assert not verify(signing.key_webhook_secret(b"server", "01kb7y3m0c4v6f0c2x1r9d8e7x", 3), header, body)
    stale = signing.webhook_signature(secret, int(time.time()) - 600, body)
    assert not verify(secret, stale, body)
