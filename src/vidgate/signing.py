"""Signed media links: HMAC-SHA256 over (task, variant, expiry), so no Authorization header is needed.

Relay clients hand `video_url` to browsers and download tools that cannot send our API key, as
relay CDN links work today; the signature makes such a link unguessable and the expiry bounds how
long a leaked one stays useful.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def _mac(key: bytes, task_id: str, variant: str, expires: int) -> str:
    digest = hmac.new(key, f"{task_id}/{variant}/{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, task_id: str, variant: str, expires: int) -> str:
    return _mac(key, task_id, variant, expires)


def verify(key: bytes, task_id: str, variant: str, expires: int, signature: str, *, now_s: int) -> bool:
    """True only for an untampered signature whose expiry has not passed (compared in constant time)."""
    expected = _mac(key, task_id, variant, expires)
    return hmac.compare_digest(expected.encode(), signature.encode()) and now_s < expires
