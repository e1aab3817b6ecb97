"""Can one worker process keep up with thousands of upstream jobs in flight?

One `vidgate worker` process, an `openai` channel on the shipped fake upstream (served by this script,
so the worker's CPU is measured alone), N tasks, each upstream job ready about `--ready` seconds after it
was made. Two modes:

- `tracking` (default): the N jobs are already in flight when the worker starts (made on the fake, the
  tasks saved as submitted to them): what it costs to track them, poll them and fetch their results;
- `end-to-end`: the N tasks are created at once and the worker also submits them (the burst case).

Measured, from the fake's journal (one clock for both sides):

- completion-detection lag: from the moment a job became ready to the first poll that saw it done;
  target: p99 <= poll interval + 2 s;
- upstream polls per task; target: <= ready / poll interval + 2;
- the worker's CPU: seconds, share of one core over the run, and milliseconds per task (the whole
  life of a task: ingest, submit, polls, download, probe, previews, commit).

- from upstream-ready to served by us: from the moment a job became ready to the moment its task was
  completed here (the result copied, previews made, committed); result copies bound it;
- results copied per CPU-second of the worker processes.

Both targets are printed as ratios (measured / target; <= 1 meets it).

Results are real-size by default (`--clip real`: one 720x1280 10 s H.264 MP4 of about 5 MB, made at the
start and served for every job); `--clip tiny` serves the fake's own tiny clips. `--baseline REF` runs
the same measurement a second time with the worker processes running the code of git revision REF (from
a temporary worktree), on the same fake and the same clip, and prints the ratios.

    .venv/bin/python bench/upstream_polling.py [--tasks 5000] [--ready 30] [--poll 10] [--mode tracking]
        [--concurrency 512] [--workers 1] [--db URL] [--clip real] [--baseline REF]

--db defaults to $VIDGATE_TEST_PG_URL (a PostgreSQL server; scripts/start-postgres prints one); a
fresh database is made and dropped. `sqlite` uses a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import numpy as np
from bench_support import cpu_seconds, percentile, scratch_database
from sqlalchemy import bindparam, func, select, update

from vidgate.clock import SystemClock
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import WatermarkMode
from vidgate.media.encode import Mp4Writer
from vidgate.store import db
from vidgate.store.keys import KeyStore
from vidgate.store.tables import tasks
from vidgate.store.tasks import TaskStore
from vidgate.testing.fake_upstream import FakeUpstream
from vidgate.testing.server import bind_loopback, serving

FAKE_KEY = "sk-bench"


def make_real_size_clip(path: Path, width: int = 720, height: int = 1280, seconds: int = 10) -> Path:
    """A 720p 10 s H.264 MP4 of about 5 MB with detail and motion (a keyframe every 2 s, as the
    product's writer makes them): what a vendor hands back, not a gradient that compresses to nothing."""
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 250, (height // 16, width // 16, 3), dtype=np.uint8)
    picture = np.kron(blocks, np.ones((16, 16, 1), dtype=np.uint8))
    with Mp4Writer(path, width, height, fps=24, crf=32, preset="ultrafast") as writer:
        for i in range(seconds * 24):
            grain = rng.integers(0, 6, (height, width, 1), dtype=np.uint8)
            writer.write(np.roll(picture, i * 5, axis=1) + grain)
    return path


@contextmanager
def code_at(revision: str | None) -> Iterator[str | None]:
    """The `src` folder of `revision` in a temporary git worktree (None: this checkout's code)."""
    if revision is None:
        yield None
        return
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="vidgate-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        add = ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), revision]
        subprocess.run(add, check=True, stdout=subprocess.DEVNULL)
        try:
            yield str(tree / "src")
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=False)


@dataclass
class Measured:
    label: str
    elapsed: float
    cpu: float
    lags: list[float]
    served: list[float]
    polls: list[int]
    span: float
    all_done: bool


async def create_tasks(url: str, prompts: list[str]) -> list[str]:
    """The tasks, as the API would have saved them."""
    await db.upgrade(url)
    engine = db.create_engine(url)
    try:
        now = SystemClock().now_ms()
        owner = (await KeyStore(engine).create(name="bench", is_admin=False, now=now))[0].id
        store = TaskStore(engine)
        ids = []
        for prompt in prompts:
            spec = VideoSpec("sora-2", prompt, (), 720, 1280, 10, WatermarkMode.PREFER_CLEAN)
            task = await store.create(spec, owner=owner, dialect="unified", now=now, deadline_ms=3_600_000)
            ids.append(task.id)
        return ids
    finally:
        await engine.dispose()


async def attach_jobs(url: str, ids: list[str], jobs: list[str]) -> None:
    """Save the tasks as submitted to these jobs (what the submit step would have written)."""
    engine = db.create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == bindparam("task_id"))
                .values(status="processing", step="poll", channel="fake", upstream_id=bindparam("job"),
                        upstream_state={}, next_run_at=SystemClock().now_ms()),
                [{"task_id": t, "job": j} for t, j in zip(ids, jobs, strict=True)],
            )  # fmt: skip
    finally:
        await engine.dispose()


async def make_jobs(fake_url: str, prompts: list[str]) -> list[str]:
    """The upstream jobs, made on the fake directly (as if submitted earlier)."""
    headers = {"Authorization": f"Bearer {FAKE_KEY}"}
    async with httpx.AsyncClient(base_url=f"{fake_url}/v1/", headers=headers, timeout=30) as client:
        limit = anyio.Semaphore(32)

        async def make(prompt: str) -> str:
            async with limit:
                response = await client.post(
                    "videos", files={"prompt": (None, prompt), "seconds": (None, "10")}
                )
                return str(response.json()["id"])

        return list(await asyncio.gather(*(make(p) for p in prompts)))


async def active(url: str) -> int:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            query = (
                select(func.count()).select_from(tasks).where(tasks.c.status.in_(["pending", "processing"]))
            )
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vidgate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clip = None
        if args.clip == "real":
            clip = make_real_size_clip(tmp / "result.mp4")
            print(f"result: 720x1280 10 s H.264, {clip.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
        results = []
        for label, revision in [
            ("this code", None),
            *([(f"at {args.baseline}", args.baseline)] * bool(args.baseline)),
        ]:
            with code_at(revision) as src:
                results.append(await run_once(args, tmp / label.replace(" ", "-"), clip, label, src))
        for measured in results:
            report(args, measured)
        if len(results) == 2:
            now, then = results
            print(
                f"ratios (at {args.baseline} / this code): worker CPU per task {then.cpu / now.cpu:.1f}x, "
                f"ready-to-served p99 {percentile(then.served, 99) / percentile(now.served, 99):.1f}x, "
                f"detection lag p99 {percentile(then.lags, 99) / max(0.01, percentile(now.lags, 99)):.1f}x"
            )


async def run_once(
    args: argparse.Namespace, tmp: Path, clip: Path | None, label: str, src: str | None
) -> Measured:
    rng = random.Random(1)
    prompts = [
        f"bench {i} #ready={rng.uniform(args.ready - 2, args.ready + 2):.2f}" for i in range(args.tasks)
    ]
    tmp.mkdir()
    with scratch_database(None if args.db in (None, "sqlite") else args.db, tmp, "vgbench") as url:
        fake = FakeUpstream(
            api_key=FAKE_KEY,
            clock=time.time,
            ready_seconds=args.ready,
            poll_after_ms=round(args.poll * 1000),
            clip_scale=40,
            clip_fps=2,
            video_file=clip,
        )
        async with serving(fake.app, bind_loopback()) as fake_url:
            fake.base_url = fake_url
            ids = await create_tasks(url, prompts)
            if args.mode == "tracking":
                await attach_jobs(url, ids, await make_jobs(fake_url, prompts))
            elapsed, cpu = await measure(args, url, fake_url, tmp, src)
            served = await served_at(url)
        return measurements(label, fake, elapsed, cpu, served)


async def measure(
    args: argparse.Namespace, url: str, fake_url: str, tmp: Path, src: str | None
) -> tuple[float, float]:
    """Run the worker processes until every task has ended: (seconds taken, their CPU seconds)."""
    channel = {
        "name": "fake",
        "kind": "openai",
        "base_url": f"{fake_url}/v1",
        "api_key": FAKE_KEY,
        "models": ["sora-2"],
        "max_connections": 32,
        "options": {"thumbnail": False},
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")},
        "VIDGATE_DATABASE_URL": url,
        "VIDGATE_DATA_DIR": str(tmp / "data"),
        "VIDGATE_AUTO_MIGRATE": "false",
        "VIDGATE_CHANNELS": json.dumps([channel]),
        "VIDGATE_WORKER__CONCURRENCY": str(args.concurrency),
        "VIDGATE_WORKER__LEASE_SECONDS": "60",
        "VIDGATE_WORKER__DEFAULT_POLL_SECONDS": str(args.poll),
        "VIDGATE_LOG_LEVEL": "warning",
    }
    if src is not None:
        env["PYTHONPATH"] = src  # the baseline's package, ahead of this checkout's
    started = time.time()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "vidgate", "worker"], env=env, stdout=sys.stderr, stderr=sys.stderr
        )
        for _ in range(args.workers)
    ]
    try:
        while (left := await active(url)) > 0:
            if time.time() - started > args.timeout:
                raise SystemExit(f"not done after {args.timeout} s: {left} tasks still active")
            print(f"  {time.time() - started:6.1f} s: {left} active", file=sys.stderr)
            await asyncio.sleep(2)
        elapsed = time.time() - started
        cpu = sum(cpu_seconds(worker.pid) for worker in workers)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    return elapsed, cpu


async def served_at(url: str) -> dict[str, float]:
    """Each upstream job's task's completion time here (Unix seconds)."""
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(tasks.c.upstream_id, tasks.c.completed_at).where(tasks.c.status == "completed")
            )
            return {str(job): at / 1000 for job, at in rows if job and at}
    finally:
        await engine.dispose()


def measurements(
    label: str, fake: FakeUpstream, elapsed: float, cpu: float, served: dict[str, float]
) -> Measured:
    made: dict[str, float] = {}
    ready_after: dict[str, float] = {}
    polls: dict[str, int] = {}
    seen_done: dict[str, float] = {}
    for entry in fake.journal:
        if entry.op == "create" and entry.job:
            made[entry.job] = entry.at
            ready_after[entry.job] = float((entry.prompt or "").rsplit("#ready=", 1)[1].split()[0])
        elif entry.op == "poll" and entry.job and entry.status == 200:
            polls[entry.job] = polls.get(entry.job, 0) + 1
            if entry.detail.get("reported") == "completed":
                seen_done.setdefault(entry.job, entry.at)
    ready = {j: made[j] + ready_after[j] for j in made}
    return Measured(
        label=label,
        elapsed=elapsed,
        cpu=cpu,
        lags=[seen_done[j] - ready[j] for j in seen_done],
        served=[served[j] - ready[j] for j in served if j in ready],
        polls=[polls.get(j, 0) for j in made],
        span=max(made.values()) - min(made.values()),
        all_done=len(served) == len(made),
    )


def report(args: argparse.Namespace, m: Measured) -> None:
    lag_target = args.poll + 2
    polls_target = args.ready / args.poll + 2
    made_how = "made before the workers started" if args.mode == "tracking" else "submitted by the workers"
    print(
        f"[{m.label}] {args.tasks} tasks (all completed: {m.all_done}), {args.workers} worker process(es), "
        f"{args.clip} results, concurrency {args.concurrency}, ready after ~{args.ready:g} s, "
        f"poll every {args.poll:g} s"
    )
    print(f"  {args.mode}: all jobs {made_how} within {m.span:.1f} s; the workers took {m.elapsed:.1f} s")
    print(
        f"  detection lag: p50 {percentile(m.lags, 50):.2f} s, p99 {percentile(m.lags, 99):.2f} s, "
        f"max {max(m.lags):.2f} s  -> p99 / target ({lag_target:g} s) = "
        f"{percentile(m.lags, 99) / lag_target:.2f}"
    )
    print(
        f"  upstream-ready to served by us: p50 {percentile(m.served, 50):.2f} s, "
        f"p99 {percentile(m.served, 99):.2f} s"
    )
    print(
        f"  polls per task: mean {statistics.mean(m.polls):.2f}, max {max(m.polls)}  "
        f"-> max / target ({polls_target:g}) = {max(m.polls) / polls_target:.2f}"
    )
    print(
        f"  worker CPU: {m.cpu:.1f} s over {m.elapsed:.1f} s = {m.cpu / m.elapsed:.0%} of one core, "
        f"{m.cpu / args.tasks * 1000:.1f} ms per task, {args.tasks / m.cpu:.1f} results copied per CPU-second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--ready", type=float, default=30.0, help="seconds until an upstream job is done")
    parser.add_argument("--poll", type=float, default=10.0, help="the poll interval the upstream asks for")
    parser.add_argument("--concurrency", type=int, default=512, help="the worker's steps at once")
    parser.add_argument("--mode", choices=["tracking", "end-to-end"], default="tracking")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--clip", choices=["real", "tiny"], default="real", help="the results' size")
    parser.add_argument("--baseline", help="also measure the worker at this git revision, side by side")
    parser.add_argument(
        "--db", default=os.environ.get("VIDGATE_TEST_PG_URL"), help="PostgreSQL URL or 'sqlite'"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
