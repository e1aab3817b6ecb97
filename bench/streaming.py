"""Streaming one 50 MB video to 50 clients at once: the server's memory growth and its throughput,
divided by the same file served by a bare Starlette FileResponse (bench/bare_app.py) in the same run.

    .venv/bin/python bench/streaming.py [--mb 50] [--connections 50] [--duration 10]

A completed task whose video is a `--mb` MiB file (random bytes: nothing compresses) is seeded into a
fresh data dir; `vidgate serve --no-worker` answers its signed link (`/files/...`, the URL a query
returns). wrk (2 threads, 50 connections) downloads it over and over for `--duration` seconds, then
does the same against the bare app's `/file`. The server's RSS is sampled every 50 ms from /proc;
growth = peak during the run - RSS just before it. Targets (issue 9): growth < 64 MB; MiB/s near the
bare FileResponse's (which uses sendfile-free chunked reads too: Starlette reads 64 KiB at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_api import free_port, lua_script, seed, settings_from, stop, wait_ready

HERE = Path(__file__).resolve().parent


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.before = rss_bytes(pid)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wrk_transfer(url: str, script: Path, duration: int, connections: int) -> tuple[float, int, str]:
    """MiB/s, completed downloads, and wrk's error line (if any)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "60s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120, check=True).stdout
    value, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    mib = float(value) * {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}[unit]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors:.*", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: \d+", out)
    return mib, done, " ".join(m.group(0) for m in (errors, non_2xx) if m)


async def seed_video(env: dict[str, str], size: int, src: Path) -> tuple[str, str]:
    """The seeded task's API key and id, its video a `size`-byte file stored through the blob store."""
    from sqlalchemy import update

    from vidgate.runtime import open_runtime
    from vidgate.store.blobs import media_key
    from vidgate.store.db import write_transaction
    from vidgate.store.tables import tasks as tasks_table

    key, [task_id] = await seed(env, 1)
    with src.open("wb") as fh:
        for _ in range(size // 2**20):
            fh.write(os.urandom(2**20))
    async with open_runtime(settings_from(env)) as runtime:
        video = media_key(task_id, "video")
        await runtime.blobs.put_file(src, video)
        async with write_transaction(runtime.engine) as conn:
            await conn.execute(
                update(tasks_table)
                .where(tasks_table.c.id == task_id)
                .values(status="completed", step="done", progress=100, video_key=video)
            )
    return key, task_id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    size = args.mb * 2**20
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        env = {
            "VIDGATE_DATA_DIR": str(tmp / "data"),
            "VIDGATE_PORT": str(port),
            "VIDGATE_LOG_FORMAT": "json",
            "VIDGATE_SECRET_KEY": "bench-secret",
            "VIDGATE_AUTO_MIGRATE": "true",
        }
        src = tmp / "video.mp4"
        key, task_id = asyncio.run(seed_video(env, size, src))
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")} | env
        log = (tmp / "serve.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "vidgate", "serve", "--no-worker"], env=child_env, stdout=log, stderr=log
        )
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, str(HERE / "bare_app.py"), str(bare_port), "100", str(src)])
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + "/healthz", server)
            wait_ready(f"http://127.0.0.1:{bare_port}/json", bare)
            query = httpx.get(
                f"{base}/v1/video/query",
                params={"id": f"sora-2:task_{task_id}"},
                headers={"Authorization": f"Bearer {key}"},
            ).json()
            link = httpx.URL(query["video_url"])
            got = httpx.get(str(link), timeout=60)
            assert got.status_code == 200 and len(got.content) == size, got.status_code
            del got
            path = link.raw_path.decode()
            ours_script = lua_script(tmp / "ours.lua", method="GET", paths=[path], headers={})
            bare_script = lua_script(tmp / "bare.lua", method="GET", paths=["/file"], headers={})
            print(f"{args.mb} MiB video, wrk -t2 -c{args.connections} -d{args.duration}s, loopback")
            results = {}
            for name, proc, url, script in (
                ("vidgate /files (signed link)", server, base, ours_script),
                ("bare Starlette FileResponse", bare, f"http://127.0.0.1:{bare_port}", bare_script),
            ):
                with RssSampler(proc.pid) as rss:
                    started = time.monotonic()
                    mib, done, errors = wrk_transfer(url, script, args.duration, args.connections)
                    took = time.monotonic() - started
                growth = (rss.peak - rss.before) / 2**20
                verdict = "met" if growth < 64 else "NOT met"
                results[name] = mib
                print(
                    f"  {name:<30} {mib:8.1f} MiB/s  {done:4d} whole downloads in {took:4.1f} s  "
                    f"RSS {rss.before / 2**20:6.1f} -> peak {rss.peak / 2**20:6.1f} MiB "
                    f"(growth {growth:5.1f} MiB, target < 64: {verdict})"
                    f"{'  ' + errors if errors else ''}",
                    flush=True,
                )
            ours, theirs = results.values()
            print(f"  throughput ratio vidgate / bare: {ours / theirs:.3f}")
        finally:
            stop(server)
            stop(bare)
            log.close()


if __name__ == "__main__":
    main()
