"""A burst of creates: how soon does every task reach the upstream?

    .venv/bin/python bench/burst_submit.py [--tasks 1000] [--db sqlite|postgres|both]
        [--topology serve|split|both] [--baseline auto|none|PATH] [--create-latency 0.05]
        [--clients 32] [--max-concurrent N] [--concurrency N]

`--tasks` creates (`POST /v1/video/create`, JSON, one key) go through the real HTTP API of one
`vidgate serve`, from `--clients` connections at once, to an `openai` channel on the shipped fake upstream
(`vidgate dev fake-upstream`, its own process), which takes `--create-latency` seconds to answer a create
(the `create_latency` directive, in each prompt). Topologies:

- `serve`: one `vidgate serve` with its embedded worker (the create wakes the worker in-process);
- `split`: `vidgate serve --no-worker` and one `vidgate worker` process (on PostgreSQL a NOTIFY wakes
  it; on SQLite it finds the tasks at its next idle tick).

Measured per run, on one clock (CLOCK_MONOTONIC: the fake's journal and this script's):

- creates answered per second (the first request sent to the last 200);
- *reach lag*: from the last create's 200 until the last job was made upstream (the fake's journal);
  target <= 10 s, or what the channel's `max_concurrent` allows;
- the API's answers while the worker submits: `GET /v1/videos/{id}` every 20 ms from the start of the
  burst until the last job is made upstream, p50 / p99 / max latency;
- the CPU time of the gateway's processes.

Every row runs twice, back to back: this checkout, and today's committed code (`--baseline auto`: a
`git worktree add` of HEAD in a temporary directory, run with `PYTHONPATH=<worktree>/src`, removed at
the end; or a path to another checkout's root). The reference is a synchronous submit, as a proxy that
calls the upstream inside the create request does (LiteLLM's `/v1/videos`): the same N creates sent
straight to the fake from the same number of connections; its reach lag is 0 by construction, so what it
shows is the create rate such a proxy can answer at.

--db postgres uses $VIDGATE_TEST_PG_URL's server (scripts/start-postgres prints one): a fresh database
per run, dropped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_support import cpu_seconds, percentile, postgres_server, scratch_database

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FAKE_KEY = "sk-burst-bench"


@dataclass
class Result:
    label: str
    creates_per_s: float
    burst_s: float
    reach_lag_s: float | None  # None: not every job reached the upstream in time
    reached: int
    api_p50_ms: float
    api_p99_ms: float
    api_max_ms: float
    cpu_s: float
    create_errors: int
    logged_errors: int = 0  # lines the gateway logged at level error (a crashed step, a failed claim)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_answers(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # a process that is starting; not a race
    raise SystemExit(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FakeUpstream:
    """The shipped fake upstream, in a process of its own (this checkout's code for every run)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vidgate", "dev", "fake-upstream", "--port", str(self.port),
                 "--api-key", FAKE_KEY, "--ready", "3600", "--poll-after-ms", "600000"],
                env=env, stdout=out, stderr=out,
            )  # fmt: skip
        wait_answers(f"{self.url}/_fake/journal?op=none", self.proc)

    def reset(self) -> None:
        httpx.post(f"{self.url}/_fake/reset", timeout=10).raise_for_status()

    def creates(self) -> list[float]:
        """When each job was made (the fake's clock: CLOCK_MONOTONIC, as `time.monotonic` here)."""
        entries = httpx.get(f"{self.url}/_fake/journal", params={"op": "create"}, timeout=30).json()
        return [float(e["at"]) for e in entries if e["op"] == "create"]


def gateway_env(
    args: argparse.Namespace, src: Path, url: str, data: Path, port: int, fake: str
) -> dict[str, str]:
    channel: dict[str, object] = {
        "name": "fake",
        "kind": "openai",
        "base_url": f"{fake}/v1",
        "api_key": FAKE_KEY,
        "models": ["sora-2"],
        "options": {"thumbnail": False},
    }
    if args.max_concurrent:
        channel["max_concurrent"] = args.max_concurrent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")},
        "PYTHONPATH": str(src),
        "VIDGATE_DATABASE_URL": url,
        "VIDGATE_DATA_DIR": str(data),
        "VIDGATE_AUTO_MIGRATE": "true",
        "VIDGATE_SECRET_KEY": "burst-bench",
        "VIDGATE_PORT": str(port),
        "VIDGATE_CHANNELS": json.dumps([channel]),
        "VIDGATE_LOG_LEVEL": "warning",
        "VIDGATE_LOG_FORMAT": "json",
    }
    if args.concurrency:
        env["VIDGATE_WORKER__CONCURRENCY"] = str(args.concurrency)
    return env


async def burst(
    args: argparse.Namespace, base: str, key: str, fake: FakeUpstream
) -> tuple[list[float], float, int, list[float], list[float]]:
    """Send the creates; probe a retrieve every 20 ms until every job is upstream (or the timeout).
    Returns the 200s' times, the burst's start, the errors, the jobs' times, the probes' latencies."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=args.clients + 1, max_keepalive_connections=args.clients + 1)
    answered: list[float] = []
    ids: list[str] = []
    errors = 0
    probes: list[float] = []
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(args.tasks):
            queue.put_nowait(i)

        async def sender() -> None:
            nonlocal errors
            while not queue.empty():
                i = queue.get_nowait()
                body = {
                    "model": "sora-2",
                    "prompt": f"burst {i} #create_latency={args.create_latency:g}",
                    "seconds": 4,
                }
                response = await client.post("/v1/video/create", json=body)
                if response.status_code == 200:
                    answered.append(time.monotonic())
                    ids.append(response.json()["id"])
                else:
                    errors += 1

        async def prober() -> None:
            while not ids:
                await asyncio.sleep(0.005)
            i = 0
            while not done.is_set():
                sent = time.monotonic()
                response = await client.get(f"/v1/videos/{ids[i % len(ids)]}")
                response.raise_for_status()
                probes.append((time.monotonic() - sent) * 1000)
                i += 1
                await asyncio.sleep(0.02)

        started = time.monotonic()
        probing = asyncio.create_task(prober())
        await asyncio.gather(*(sender() for _ in range(args.clients)))
        deadline = time.monotonic() + args.timeout
        made: list[float] = []
        while time.monotonic() < deadline:
            made = await asyncio.to_thread(fake.creates)
            if len(made) >= len(answered):
                break
            await asyncio.sleep(0.1)
        done.set()
        await probing
    return answered, started, errors, made, probes


def run_gateway(
    args: argparse.Namespace, label: str, src: Path, db_kind: str, topology: str, fake: FakeUpstream
) -> Result:
    fake.reset()
    with tempfile.TemporaryDirectory(prefix="vidgate-burst-") as tmp_name:
        tmp = Path(tmp_name)
        server = None if db_kind == "sqlite" else postgres_server()
        procs: list[subprocess.Popen[bytes]] = []
        with scratch_database(server, tmp, "vgburst") as url:
            try:
                port = free_port()
                env = gateway_env(args, src, url, tmp / "data", port, fake.url)
                base = f"http://127.0.0.1:{port}"
                log = open(tmp / "gateway.log", "ab")  # noqa: SIM115 - closed below
                serve_args = ["serve"] if topology == "serve" else ["serve", "--no-worker"]
                procs.append(subprocess.Popen([sys.executable, "-m", "vidgate", *serve_args], env=env,
                                              stdout=log, stderr=log))  # fmt: skip
                wait_answers(f"{base}/healthz", procs[0])
                if topology == "split":
                    procs.append(subprocess.Popen([sys.executable, "-m", "vidgate", "worker"], env=env,
                                                  stdout=log, stderr=log))  # fmt: skip
                key = subprocess.run(
                    [sys.executable, "-m", "vidgate", "keys", "create", "--name", "bench"],
                    env=env, capture_output=True, text=True, check=True,
                ).stdout.strip().splitlines()[-1]  # fmt: skip
                time.sleep(1.0)  # let the worker process start before the burst (it is not timed)
                cpu_before = sum(cpu_seconds(p.pid) for p in procs)
                answered, started, errors, made, probes = asyncio.run(burst(args, base, key, fake))
                cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
                for proc in procs:
                    if proc.poll() is not None:
                        raise SystemExit(f"{label}: a gateway process died; see its log:\n"
                                         + (tmp / "gateway.log").read_text()[-3000:])  # fmt: skip
            finally:
                for proc in procs:
                    stop(proc)
            gateway_log = (tmp / "gateway.log").read_text(errors="replace")
    logged_errors = gateway_log.count('"level":"error"')
    if logged_errors:
        print(f"{label}: the gateway logged {logged_errors} errors, e.g.:", file=sys.stderr)
        print(
            next(line for line in gateway_log.splitlines() if '"level":"error"' in line)[:2000],
            file=sys.stderr,
        )
    last_200 = max(answered)
    complete = len(made) >= len(answered) > 0
    return Result(
        label=label,
        creates_per_s=len(answered) / (last_200 - started),
        burst_s=last_200 - started,
        reach_lag_s=max(0.0, max(made) - last_200) if complete else None,
        reached=len(made),
        api_p50_ms=percentile(probes, 50),
        api_p99_ms=percentile(probes, 99),
        api_max_ms=max(probes, default=float("nan")),
        cpu_s=cpu,
        create_errors=errors,
        logged_errors=logged_errors,
    )


def run_reference(args: argparse.Namespace, fake: FakeUpstream) -> Result:
    """A synchronous submit: the same creates, straight to the upstream, from as many connections."""
    fake.reset()

    async def main() -> tuple[list[float], float]:
        headers = {"Authorization": f"Bearer {FAKE_KEY}"}
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        answered: list[float] = []
        async with httpx.AsyncClient(base_url=fake.url, headers=headers, limits=limits, timeout=60) as client:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(args.tasks):
                queue.put_nowait(i)

            async def sender() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    form = {"prompt": (None, f"burst {i} #create_latency={args.create_latency:g}"),
                            "model": (None, "sora-2"), "seconds": (None, "4")}  # fmt: skip
                    response = await client.post("/v1/videos", files=form)
                    response.raise_for_status()
                    answered.append(time.monotonic())

            started = time.monotonic()
            await asyncio.gather(*(sender() for _ in range(args.clients)))
        return answered, started

    answered, started = asyncio.run(main())
    last = max(answered)
    return Result("synchronous submit (reference)", len(answered) / (last - started), last - started, 0.0,
                  len(fake.creates()), float("nan"), float("nan"), float("nan"), 0.0, 0)  # fmt: skip


def baseline_checkout(spec: str, tmp: Path) -> tuple[Path | None, bool]:
    """(the baseline's root, whether this script made it)."""
    if spec == "none":
        return None, False
    if spec != "auto":
        return Path(spec).resolve(), False
    where = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), "HEAD"],
                   check=True, capture_output=True)  # fmt: skip
    return where, True


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def ratio(new: float | None, old: float | None) -> str:
    if new is None or old is None or old == 0:
        return "-"
    return f"{new / old:.2f}"


def report(
    rows: list[tuple[str, Result, Result | None]], reference: Result, args: argparse.Namespace
) -> None:
    print(
        f"\n{args.tasks} creates from {args.clients} connections; the upstream answers a create in "
        f"{args.create_latency * 1000:g} ms; channel max_concurrent {args.max_concurrent or 'none'}"
    )
    print(f"reference, {reference.label}: {reference.creates_per_s:.0f} creates/s "
          f"({reference.burst_s:.2f} s for all)")  # fmt: skip
    head = ("| run | code | creates/s | burst | reach lag | reached | API p50 / p99 / max | gateway CPU |"
            "\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    print(head)
    for name, new, old in rows:
        for result in (new, old):
            if result is None:
                continue
            print(
                f"| {name} | {result.label} | {result.creates_per_s:.0f} | {result.burst_s:.2f} s | "
                f"{fmt(result.reach_lag_s)} s | {result.reached}/{args.tasks} | "
                f"{result.api_p50_ms:.1f} / {result.api_p99_ms:.1f} / {result.api_max_ms:.0f} ms | "
                f"{result.cpu_s:.1f} s |"
                + (f" create errors: {result.create_errors}" if result.create_errors else "")
                + (f" logged errors: {result.logged_errors}" if result.logged_errors else "")
            )
        if old is not None:
            print(
                f"|   | ratio new / old | {ratio(new.creates_per_s, old.creates_per_s)} | "
                f"{ratio(new.burst_s, old.burst_s)} | {ratio(new.reach_lag_s, old.reach_lag_s)} | | "
                f"{ratio(new.api_p99_ms, old.api_p99_ms)} (p99) | {ratio(new.cpu_s, old.cpu_s)} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--topology", choices=["serve", "split", "both"], default="both")
    parser.add_argument("--baseline", default="auto", help="auto (HEAD in a git worktree), none, or a path")
    parser.add_argument(
        "--create-latency", type=float, default=0.05, help="seconds the fake takes per create"
    )
    parser.add_argument("--clients", type=int, default=32, help="connections creating at once")
    parser.add_argument("--max-concurrent", type=int, default=None, help="the channel's max_concurrent")
    parser.add_argument("--concurrency", type=int, default=None, help="VIDGATE_WORKER__CONCURRENCY")
    parser.add_argument("--timeout", type=float, default=120.0, help="wait for the jobs after the burst")
    args = parser.parse_args()
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    topologies = ["serve", "split"] if args.topology == "both" else [args.topology]
    tmp = Path(tempfile.mkdtemp(prefix="vidgate-burst-bench-"))
    baseline, made = baseline_checkout(args.baseline, tmp)
    fake = FakeUpstream(tmp / "fake.log")
    rows: list[tuple[str, Result, Result | None]] = []
    try:
        reference = run_reference(args, fake)
        for db_kind in dbs:
            for topology in topologies:
                name = f"{db_kind}, {'serve' if topology == 'serve' else 'serve --no-worker + worker'}"
                print(f"running {name} ...", file=sys.stderr)
                new = run_gateway(args, "this checkout", ROOT / "src", db_kind, topology, fake)
                old = (
                    run_gateway(args, "baseline", baseline / "src", db_kind, topology, fake)
                    if baseline is not None
                    else None
                )
                rows.append((name, new, old))
    finally:
        stop(fake.proc)
        if made and baseline is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], check=False
            )
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, reference, args)


if __name__ == "__main__":
    main()
