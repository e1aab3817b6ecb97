"""Query and create throughput of `vidgate serve --no-worker`, over loopback with wrk, divided by a bare
Starlette endpoint (bench/bare_app.py) started by this script on the same uvicorn options.

    .venv/bin/python bench/http_api.py [--db sqlite|postgres|both] [--duration 10] [--connections 16]

For each database: a fresh data dir (and, on PostgreSQL, a fresh database on VIDGATE_TEST_PG_URL's
server), one key, `--tasks` tasks seeded through the store (half of them completed, with media keys, so
unified views sign three links), then wrk (one thread, 16 connections) on:

- `GET /v1/videos/{id}` and `GET /v1/video/query?id=` rotating over the seeded ids;
- `GET /v1/videos?limit=20` (a list page);
- `POST /v1/video/create` (JSON) and `POST /v1/videos` (multipart with a 64x36 PNG), each request a
  new durable task;
- `POST /v1/video/create (priced)`: a model the channel prices, by a key with a balance, so each create
  also holds credits on the key's row in the same transaction (docs/accounts.md);
- a 401 answer (no database work).

The bare app answers `GET /json` with bytes the size of a task view, `POST /json` after parsing the
body and `POST /form` after parsing the same multipart form. Each row prints req/s, p50 and p99 latency,
and the ratio of vidgate's req/s to the bare endpoint's, measured back to back in this run (the
2-core VM is noisy: compare ratios, not absolute numbers). Targets (issue 9): queries >= 2,000 req/s
with p99 <= 25 ms, creates >= 500 req/s with p99 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from PIL import Image

if TYPE_CHECKING:
    from vidgate.config import Settings

HERE = Path(__file__).resolve().parent
TARGETS = {"query": (2000, 25.0), "create": (500, 100.0)}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a process that is starting; not a race
    raise SystemExit(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, script: Path, duration: int, connections: int) -> WrkResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    p = {k: _ms(*re.fullmatch(r"([\d.]+)(\w+)", v).groups()) for k, v in lat.items()}  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        rps=rps,
        p50_ms=p["50"],
        p99_ms=p["99"],
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def lua_script(
    path: Path, *, method: str, paths: list[str], headers: dict[str, str], body: bytes = b""
) -> Path:
    """A wrk script: one method and body, paths taken in turn, fixed headers."""

    def q(s: str) -> str:
        return json.dumps(s)

    lines = ["local paths = {" + ",".join(q(p) for p in paths) + "}", "local i = 0"]
    lines.append(f"wrk.method = {q(method)}")
    for k, v in headers.items():
        lines.append(f"wrk.headers[{q(k)}] = {q(v)}")
    if body:
        lines.append(f"local f = io.open({q(str(path) + '.body')}, 'rb')")
        lines.append("wrk.body = f:read('*a')")
        lines.append("f:close()")
        path.with_name(path.name + ".body").write_bytes(body)
    lines.append("request = function() i = i % #paths + 1 return wrk.format(nil, paths[i]) end")
    path.write_text("\n".join(lines) + "\n")
    return path


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (40, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def multipart(fields: dict[str, str], file_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "vidgatebenchboundary7f3a"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a `vidgate serve` started with `env` will read."""
    from vidgate.config import Settings

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


# The built-in channel, with sora-2-pro priced: its creates hold credits on a key with a balance (one
# transaction with the key's row, docs/accounts.md) while sora-2 stays free (grouped creates).
PRICED_CHANNELS = json.dumps(
    [{"name": "animate", "kind": "animate", "models": ["sora-2", "sora-2-pro"],
      "pricing": {"sora-2-pro": {"per_second": "0.01"}}}]
)  # fmt: skip


async def seed(env: dict[str, str], n_tasks: int) -> tuple[str, str, list[str]]:
    """One key and `n_tasks` tasks (every other one completed with media), through the store; and a
    key with a balance for the priced creates."""
    from sqlalchemy import update

    from vidgate.domain.requests import VideoSpec
    from vidgate.domain.tasks import WatermarkMode
    from vidgate.runtime import open_runtime
    from vidgate.store.db import write_transaction
    from vidgate.store.tables import tasks as tasks_table

    async with open_runtime(settings_from(env)) as runtime:
        record, plaintext = await runtime.keys.create(name="bench", is_admin=False, now=0)
        _, paying = await runtime.keys.create(name="paying", is_admin=False, now=0, balance=10**15)
        ids = []
        for i in range(n_tasks):
            spec = VideoSpec("sora-2", f"bench task {i}", (), 720, 1280, 4, WatermarkMode.PREFER_CLEAN)
            now = runtime.clock.now_ms()
            task = await runtime.tasks.create(
                spec, owner=record.id, dialect="openai", now=now, deadline_ms=now + 3_600_000
            )
            ids.append(task.id)
        done = ids[::2]
        async with write_transaction(runtime.engine) as conn:
            for tid in done:
                await conn.execute(
                    update(tasks_table)
                    .where(tasks_table.c.id == tid)
                    .values(
                        status="completed",
                        progress=100,
                        step="done",
                        completed_at=runtime.clock.now_ms(),
                        video_key=f"videos/{tid}/video.mp4",
                        thumbnail_key=f"videos/{tid}/thumbnail.webp",
                        spritesheet_key=f"videos/{tid}/spritesheet.jpg",
                    )
                )
    return plaintext, paying, ids


def fresh_pg_database(server_url: str, name: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def bench_database(
    db: str, args: argparse.Namespace, bare_port: int, tmp: Path
) -> list[tuple[str, WrkResult, WrkResult]]:
    data_dir = tmp / f"data-{db}"
    port = free_port()
    env = {
        "VIDGATE_DATA_DIR": str(data_dir),
        "VIDGATE_PORT": str(port),
        "VIDGATE_LOG_FORMAT": "json",
        "VIDGATE_LOG_LEVEL": "warning" if args.quiet_log else "info",
        "VIDGATE_SECRET_KEY": "bench-secret",
        "VIDGATE_AUTO_MIGRATE": "true",
        "VIDGATE_CHANNELS": PRICED_CHANNELS,
    }
    if db == "postgres":
        server = os.environ.get("VIDGATE_TEST_PG_URL")
        if not server:
            raise SystemExit("--db postgres needs VIDGATE_TEST_PG_URL (scripts/start-postgres prints one)")
        env["VIDGATE_DATABASE_URL"] = fresh_pg_database(server, "vidgate_bench_http")
    key, paying_key, ids = asyncio.run(seed(env, args.tasks))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")} | env
    log = (tmp / f"serve-{db}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidgate", "serve", "--no-worker"], env=child_env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    bare = f"http://127.0.0.1:{bare_port}"
    auth = {"Authorization": f"Bearer {key}"}
    rows: list[tuple[str, WrkResult, WrkResult]] = []
    try:
        wait_ready(base + "/healthz", proc)
        d, c = args.duration, args.connections
        scripts = tmp / f"wrk-{db}"
        scripts.mkdir(exist_ok=True)
        bare_get = lua_script(scripts / "bare_get.lua", method="GET", paths=["/json"], headers={})
        video_paths = [f"/v1/videos/video_{i}" for i in ids]
        query_paths = [f"/v1/video/query?id=sora-2:task_{i}" for i in ids]
        create_body = json.dumps({"model": "sora-2", "prompt": "a bench clip", "duration": 4}).encode()
        priced_body = json.dumps({"model": "sora-2-pro", "prompt": "a bench clip", "duration": 4}).encode()
        bare_post = lua_script(
            scripts / "bare_post.lua",
            method="POST",
            paths=["/json"],
            headers={"Content-Type": "application/json"},
            body=create_body,
        )
        form_body, form_type = multipart(
            {"prompt": "a bench clip", "model": "sora-2", "seconds": "4", "size": "720x1280"},
            "input_reference",
            "in.png",
            png_bytes(),
        )
        cases = [
            ("GET /v1/videos/{id}", "GET", video_paths, {}, b"", bare_get),
            ("GET /v1/video/query", "GET", query_paths, {}, b"", bare_get),
            ("GET /v1/videos (list)", "GET", ["/v1/videos?limit=20"], {}, b"", bare_get),
            (
                "POST /v1/video/create",
                "POST",
                ["/v1/video/create"],
                {"Content-Type": "application/json"},
                create_body,
                bare_post,
            ),
            (
                "POST /v1/video/create (priced)",
                "POST",
                ["/v1/video/create"],
                {"Content-Type": "application/json", "Authorization": f"Bearer {paying_key}"},
                priced_body,
                bare_post,
            ),
            (
                "POST /v1/videos (multipart)",
                "POST",
                ["/v1/videos"],
                {"Content-Type": form_type},
                form_body,
                lua_script(
                    scripts / "bare_form.lua",
                    method="POST",
                    paths=["/form"],
                    headers={"Content-Type": form_type},
                    body=form_body,
                ),
            ),
            ("401 (no key)", "GET", video_paths[:1], {}, b"", bare_get),
        ]
        for n, (label, method, paths, headers, body, bare_script) in enumerate(cases):
            hdrs = headers if label.startswith("401") else {**auth, **headers}
            script = lua_script(scripts / f"case{n}.lua", method=method, paths=paths, headers=hdrs, body=body)
            run_wrk(base, script, 2, c)  # warm-up (connections, caches, the JIT-less interpreter's dicts)
            ours = run_wrk(base, script, d, c)
            theirs = run_wrk(bare, bare_script, d, c)
            rows.append((label, ours, theirs))
            print(f"  {db:<9} {fmt_row(label, ours, theirs)}", flush=True)
    finally:
        stop(proc)
        log.close()
    return rows


def fmt_row(label: str, ours: WrkResult, theirs: WrkResult) -> str:
    kind = "create" if label.startswith("POST") else "query" if "/v1/" in label else None
    verdict = ""
    if kind:
        rps_t, p99_t = TARGETS[kind]
        met = ours.rps >= rps_t and ours.p99_ms <= p99_t
        verdict = f"target {rps_t}/s p99<={p99_t:g}ms: {'met' if met else 'NOT met'}"
    bad = f" errors={ours.errors} non2xx={ours.non_2xx}" if ours.errors or (ours.non_2xx and kind) else ""
    return (
        f"{label:<28} {ours.rps:8.0f} req/s  p50 {ours.p50_ms:6.1f} ms  p99 {ours.p99_ms:6.1f} ms | bare "
        f"{theirs.rps:8.0f} req/s p99 {theirs.p99_ms:5.1f} ms | ratio {ours.rps / theirs.rps:5.3f}  "
        f"{verdict}{bad}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks seeded before the queries")
    parser.add_argument("--quiet-log", action="store_true", help="serve at log level warning (no access log)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, str(HERE / "bare_app.py"), str(bare_port), "1100"])
        try:
            wait_ready(f"http://127.0.0.1:{bare_port}/json", bare)
            dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
            print(f"wrk -t1 -c{args.connections} -d{args.duration}s, one API process, log format json")
            for db in dbs:
                bench_database(db, args, bare_port, tmp)
        finally:
            stop(bare)


if __name__ == "__main__":
    main()
