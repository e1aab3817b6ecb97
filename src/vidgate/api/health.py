"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from vidgate.api.deps import get_runtime
from vidgate.domain.circuit import ChannelHealth
from vidgate.runtime import Runtime
from vidgate.store import db

router = APIRouter(tags=["health"])
_CHECK_TIMEOUT_S = 3.0


@router.get("/healthz", summary="The process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers, its schema is current and storage is writable")
async def readyz(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with anyio.fail_after(_CHECK_TIMEOUT_S):
            await db.ping(runtime.engine)
            checks["database"] = "ok"
            current, head = await db.current_revision(runtime.engine), db.head_revision()
            checks["migrations"] = "ok" if current == head else f"at {current}, expected {head}"
    except TimeoutError:
        checks.setdefault("database", "timed out")
    except Exception as exc:  # the probe reports, it does not crash
        checks.setdefault("database", f"unreachable: {type(exc).__name__}")
    try:
        # A write and a delete of this process's own key (store/blobs.py: probe_key), under the same
        # bound as the database: an unreachable bucket must not hang the probe in its retries.
        with anyio.fail_after(_CHECK_TIMEOUT_S):
            await runtime.blobs.probe()
        checks["storage"] = "ok"
    except TimeoutError:
        checks["storage"] = "timed out"
    except Exception as exc:
        checks["storage"] = f"not writable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values()) and "migrations" in checks
    body = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "channels": await _channels(runtime),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def _channels(runtime: Runtime) -> dict[str, Any]:
    """Each channel's circuit as every worker sees it. Detail only: an open circuit does not make this
    process unready (tasks are still accepted; they wait for a channel until their deadline)."""
    try:
        with anyio.fail_after(_CHECK_TIMEOUT_S):
            health = await runtime.health.snapshot(fresh=True)
    except Exception:
        health = {}
    shown: dict[str, Any] = {}
    for channel in runtime.catalog.channels:
        state = health.get(channel.name, ChannelHealth())
        shown[channel.name] = {
            "kind": channel.kind,
            "enabled": channel.enabled,
            "circuit": state.state.value,
            "failures": state.failures,
            "open_until": state.open_until // 1000 if state.open_until else None,
            "last_error": state.last_error,
        }
    return shown
