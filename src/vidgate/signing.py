"""Signed media links: HMAC-SHA256 over (task, variant, expiry), so no Authorization header is needed.

Relay clients hand `video_url` to browsers and download tools that cannot send our API key, as
relay CDN links work today; the signature makes such a link unguessable and the expiry bounds how
long a leaked one stays useful.

Webhook signatures (below) are HMAC-SHA256 too, keyed per API key; `verify_webhook` is what a receiver
that has vidgate installed calls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# Unix seconds: 10 digits until the year 2286; a longer number is no expiry or timestamp of ours.
_MAX_TIME_DIGITS = 12


def parse_unix_seconds(text: str) -> int | None:
    """`text` as Unix seconds when it is ASCII digits of a sane length, else None.

    `str.isdigit()` alone is not enough: it accepts "²" and other Unicode digits that `int()`
    refuses, and `int()` refuses numbers of thousands of digits.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_TIME_DIGITS:
        return None
    return int(text)


def _mac(key: bytes, task_id: str, variant: str, expires: int) -> str:
    digest = hmac.new(key, f"{task_id}/{variant}/{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, task_id: str, variant: str, expires: int) -> str:
    return _mac(key, task_id, variant, expires)


def verify(key: bytes, task_id: str, variant: str, expires: int, signature: str, *, now_s: int) -> bool:
    """True only for an untampered signature whose expiry has not passed (compared in constant time)."""
    expected = _mac(key, task_id, variant, expires)
    return hmac.compare_digest(expected.encode(), signature.encode()) and now_s < expires


# Webhooks ------------------------------------------------------------------------------------------
# `X-Vidgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`, keyed with the webhook
# secret of the API key that owns the task: each key its own, so an event one key received and replays
# to another key's receiver fails there (the server-wide key of old let it pass). The timestamp inside
# the MAC lets receivers refuse replays older than a few minutes.

SIGNATURE_HEADER = "X-Vidgate-Signature"
WEBHOOK_SECRET_PREFIX = "whsec_"


def key_webhook_secret(server_secret: bytes, key_id: str, generation: int) -> str:
    """The webhook secret of API key `key_id` at `generation` (which a rotation raises): `whsec_` and
    43 base64url characters (256 bits). Derived, so none is stored: the database alone reveals none, and
    every process derives the same. Its message has no "/", so it can never equal the message of a
    media-link signature (`<task>/<variant>/<expires>`), made with the same server secret."""
    message = f"vidgate-webhook-secret-v2\x00{key_id}\x00{generation}".encode()
    digest = hmac.new(server_secret, message, hashlib.sha256).digest()
    return WEBHOOK_SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def webhook_signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The header value signing `body` at `timestamp` with a key's webhook secret (the `whsec_...`
    text, or its UTF-8 bytes: the HMAC key is those bytes as they are)."""
    mac = hmac.new(_secret_bytes(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(
    secret: str | bytes, header: str, body: bytes, *, now_s: int, tolerance_s: int = 300
) -> bool:
    """For receivers: True when `header` signs `body` with `secret` (the key's `whsec_...` webhook
    secret, as text or bytes) and is at most `tolerance_s` old."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp = parse_unix_seconds(parts.get("t", ""))
    if timestamp is None or abs(now_s - timestamp) > tolerance_s:
        return False
    expected = webhook_signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), header.strip().encode())
