"""Reading what upstreams say about their jobs, tolerantly: status words, progress, times, envelopes.

Relays and "OpenAI-compatible" servers disagree on nearly everything: `succeeded` or `SUCCESS` or
`completed`, progress as 42 or "42" or 0.42, bodies wrapped in `{code, msg, data}`, results as a URL
string or a list. (Their timestamps, in seconds, milliseconds, ISO-8601 or local "YYYY-MM-DD HH:MM:SS",
are never read: our own clock decides everything, so no shape of theirs can break a task.) Everything
here is pure and shared by the adapters, so one table of synonyms serves all of them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from vidgate.providers.base import UpstreamState

_QUEUED = {
    "queued",
    "pending",
    "not_start",
    "not_started",
    "submitted",
    "waiting",
    "queuing",
    "queueing",
    "preparing",
    "initializing",
    "created",
    "accepted",
    "starting",
    "scheduled",
}
_RUNNING = {
    "processing",
    "in_progress",
    "running",
    "generating",
    "video_generating",
    "image_downloading",
    "image_uploading",
    "video_upsampling",
    "video_generation_completed",
    "started",
    "rendering",
    "in_queue_processing",
    "working",
}
_SUCCEEDED = {"completed", "succeeded", "success", "done", "finished", "complete", "successful"}
_FAILED = {
    "failed",
    "failure",
    "error",
    "fail",
    "video_generation_failed",
    "video_upsampling_failed",
    "expired",
    "timeout",
    "timed_out",
    "rejected",
}
_CANCELLED = {"cancelled", "canceled", "aborted", "deleted"}
_WORD = re.compile(r"[\s-]+")
# Envelope codes that mean success: `{"code": 0|200|"success", "data": ...}`.
_OK_CODES = {0, 200, "0", "200", "success", "ok"}


def upstream_state(raw: Any) -> tuple[UpstreamState | None, bool]:
    """(state, was_cancelled) for a status word; (None, False) when nobody knows the word."""
    if isinstance(raw, bool) or raw is None:
        return None, False
    word = _WORD.sub("_", str(raw).strip().lower())
    if word in _QUEUED:
        return UpstreamState.QUEUED, False
    if word in _RUNNING:
        return UpstreamState.RUNNING, False
    if word in _SUCCEEDED:
        return UpstreamState.SUCCEEDED, False
    if word in _FAILED:
        return UpstreamState.FAILED, False
    if word in _CANCELLED:
        return UpstreamState.FAILED, True
    return None, False


def progress_percent(raw: Any) -> int | None:
    """0-100 from 42, "42", "42%", 42.5, or a fraction 0.42 (a float at most 1 that is not whole)."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        raw = raw.strip().rstrip("%").strip()
        try:
            value = float(raw)
        except ValueError:
            return None
        fraction = "." in raw and value <= 1
    elif isinstance(raw, (int, float)):
        value = float(raw)
        fraction = isinstance(raw, float) and value <= 1 and not value.is_integer()
    else:
        return None
    if not math.isfinite(value):
        return None
    percent = value * 100 if fraction else value
    return max(0, min(100, round(percent)))


def unwrap(body: Any) -> tuple[Any, Any]:
    """(payload, error_code) from `{code, msg|message, data}` envelopes; plain bodies pass through.

    `error_code` is the envelope's code when it is not a success code (an HTTP 200 that carries an
    error), else None. JSON carried as a string inside the payload (`resultJson`) is parsed.
    """
    if not isinstance(body, dict):
        return body, None
    payload: Any = body
    error_code = None
    if "data" in body and ("code" in body or "msg" in body) and not _looks_like_job(body):
        code = body.get("code")
        if code is not None and code not in _OK_CODES:
            error_code = code
        payload = body.get("data")
    if isinstance(payload, dict):
        payload = {k: _maybe_json(v) if k.endswith("Json") else v for k, v in payload.items()}
    return payload, error_code


def _looks_like_job(body: Mapping[str, Any]) -> bool:
    return "status" in body and ("id" in body or "task_id" in body)


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def first_url(*candidates: Any) -> str | None:
    """The first http(s) URL among values that may be a string, a list of strings or of {url: ...}."""
    for value in candidates:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                item = item.get("url")
            if isinstance(item, str) and item.lower().startswith(("http://", "https://")):
                return item
    return None


def dig(payload: Any, *path: str) -> Any:
    """payload[path[0]][path[1]]... or None wherever a step is missing."""
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload
