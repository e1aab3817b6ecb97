"""`vidgate.client` stands alone: importing it in a fresh interpreter loads no other vidgate module and
none of the server's dependencies, so the SDK works with httpx and pydantic installed and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import vidgate.client
from vidgate.client import AsyncClient, Client
Client("http://127.0.0.1:9", "vg-x").close()
AsyncClient("http://127.0.0.1:9", "vg-x")
print(json.dumps(sorted(sys.modules)))
"""
# (Not rich: httpx itself imports it, for its command line, when it is installed.)
SERVER_SIDE = (
    "fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "av", "PIL", "numpy", "structlog", "typer",
    "redis", "limits", "obstore", "psycopg", "aiosqlite", "orjson", "prometheus_client",
)  # fmt: skip


def test_importing_the_sdk_pulls_in_nothing_of_the_server() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(out.stdout)
    ours = [m for m in modules if m == "vidgate" or m.startswith("vidgate.")]
    assert "vidgate.client" in ours and "httpx" in modules and "pydantic" in modules
    assert [m for m in ours if m != "vidgate" and not m.startswith("vidgate.client")] == []
    assert [m for m in modules if m.split(".")[0] in SERVER_SIDE] == []
