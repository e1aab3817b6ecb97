"""How many paid upstream jobs does one task make when a create's outcome is ambiguous?

For each fault the shipped fake upstream can inject around a create, a gateway (SQLite, embedded worker)
sends a few tasks to fake upstreams and waits until each has ended or a time budget has passed. Then
the fake's journal says how many jobs the upstreams really made (each one billed) per task, and how the
tasks ended. The gateway's channels are the issue's setup: two `openai` channels (a, b; they can list
jobs), and for the unified rows one `unified` relay (it cannot).

    .venv/bin/python bench/paid_jobs_per_fault.py [--tasks 3] [--budget 40]

Run it against an older checkout (PYTHONPATH=<old>/src) to get the "before" column: the fake's faults
are in vidgate.testing, so copy today's fake upstream into the old tree first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx

from vidgate.api.app import create_app
from vidgate.clock import SystemClock
from vidgate.config import ChannelSettings, Settings, WorkerSettings
from vidgate.logs import configure_logging
from vidgate.store.db import create_engine, upgrade
from vidgate.store.keys import KeyStore
from vidgate.testing.fake_upstream import FakeUpstream
from vidgate.testing.resolver import PUBLIC_TEST_HOSTS, StaticResolver
from vidgate.testing.server import bind_loopback, serving

KEY = "sk-bench"
CDN = "cdn.fake.test"
# (name, dialect, directives, extra channel settings): faults around a create, from the issue.
DEDUPES = {"honours_idempotency_key": True}
FAULTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("job made, then a proxy's 502", "openai", "#accept_then_5xx=1000", {}),
    ("503 before the job was made", "openai", "#5xx=1", {}),
    ("create slower than the timeout", "openai", "#create_latency=2", {}),
    ("answer lost after the job was made", "openai", "#accept_then_drop=1", {}),
    ("job made, then a 502; relay ignores keys", "unified", "#accept_then_5xx=1 #no_idempotency", {}),
    ("job made, then a 502; relay dedupes", "unified", "#accept_then_5xx=1", DEDUPES),
    ("503 before the job was made; relay", "unified", "#5xx=1", {}),
]


async def serve_fake(stack: AsyncExitStack) -> tuple[FakeUpstream, str]:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    fake = FakeUpstream(
        api_key=KEY,
        ready_seconds=0.5,
        poll_after_ms=100,
        clip_scale=20,
        hang_seconds=3.0,
        cdn_base_url=f"http://{CDN}:{port}",
    )
    url = await stack.enter_async_context(serving(fake.app, sock))
    return fake, url


def channel(name: str, kind: str, url: str, **extra: Any) -> ChannelSettings:
    values: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "base_url": f"{url}/v1",
        "api_key": KEY,
        "models": ["sora-2"],
        "request_timeout_seconds": 1.0,
        "poll_timeout_seconds": 1.0,
        **extra,
    }
    if "lookup_window_seconds" in ChannelSettings.model_fields and kind == "openai":
        values["lookup_window_seconds"] = 5.0  # short, so the bench ends; the default is timeout + 240 s
    return ChannelSettings(**values)


async def run(tasks: int, budget: float) -> list[tuple[str, str, list[int], dict[str, int], float]]:
    rows = []
    for name, dialect, directives, extra in FAULTS:
        async with AsyncExitStack() as stack:
            a, a_url = await serve_fake(stack)
            b, b_url = await serve_fake(stack)
            if dialect == "openai":
                channels = [channel("a", "openai", a_url), channel("b", "openai", b_url, priority=1)]
            else:
                channels = [channel("relay", "unified", a_url, **extra)]
            data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            sock = bind_loopback()
            settings = Settings(
                data_dir=data,
                port=sock.getsockname()[1],
                channels=channels,
                fetch_allow_private=True,
                worker=WorkerSettings(
                    idle_poll_seconds=0.05,
                    retry_base_seconds=0.2,
                    retry_max_seconds=2.0,
                    default_poll_seconds=0.1,
                    busy_retry_seconds=0.2,
                    task_deadline_seconds=budget,
                ),
            )
            await upgrade(settings.resolved_database_url)
            engine = create_engine(settings.resolved_database_url)
            _, key = await KeyStore(engine).create(name="bench", is_admin=False, now=SystemClock().now_ms())
            await engine.dispose()
            resolver = StaticResolver({**PUBLIC_TEST_HOSTS, CDN: ["127.0.0.1"]})
            app = create_app(settings, run_worker=True, resolver=resolver)
            base = await stack.enter_async_context(serving(app, sock))
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30)
            )
            prompts = [f"bench {uuid.uuid4().hex[:8]} {directives}" for _ in range(tasks)]
            ids = []
            started = time.perf_counter()
            for text in prompts:
                r = await client.post(
                    "/v1/video/create", json={"model": "sora-2", "prompt": text, "duration": 4}
                )
                r.raise_for_status()
                ids.append(r.json()["id"])
            ended: dict[str, str] = {}
            with anyio.move_on_after(budget + 10):
                while len(ended) < len(ids):
                    for task_id in ids:
                        state = (await client.get("/v1/video/query", params={"id": task_id})).json()
                        if state["status"] in ("completed", "failed", "cancelled"):
                            code = state["error"]["code"] if state["error"] else None
                            ended[task_id] = state["status"] + (f" ({code})" if code else "")
                    await anyio.sleep(0.2)
            elapsed = time.perf_counter() - started
            jobs = [len(a.journal.creates(p)) + len(b.journal.creates(p)) for p in prompts]
            outcomes: dict[str, int] = {}
            for task_id in ids:
                outcome = ended.get(task_id, "still running")
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            rows.append((name, dialect, jobs, outcomes, elapsed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--budget", type=float, default=40.0, help="each task's deadline, seconds")
    parser.add_argument("--only", help="only the faults whose name contains this")
    args = parser.parse_args()
    configure_logging(Settings(log_level="warning"))
    if args.only:
        FAULTS[:] = [f for f in FAULTS if args.only in f[0]]
    rows = anyio.run(run, args.tasks, args.budget)
    print(f"{'fault':42} {'channels':8} {'paid jobs per task':20} {'outcomes':45} {'s':>5}")
    for name, dialect, jobs, outcomes, elapsed in rows:
        shown = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        print(f"{name:42} {dialect:8} {jobs!s:20} {shown:45} {elapsed:5.1f}")


if __name__ == "__main__":
    main()
