"""The worker's steps driven by hand: a real store (SQLite in tmp_path, opened as `open_runtime` opens
it, on a hand-moved clock), and fake upstreams whose every answer the test scripts.

No gateway and no runner: a test claims a task, calls a step, and reads the `Outcome` it decided;
`World.commit` records an outcome as the runner would, so a test can go on to the step's next run.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vidgate.clock import DatabaseAlignedClock, ManualClock
from vidgate.domain.requests import VideoSpec
from vidgate.domain.tasks import Task, WatermarkMode
from vidgate.net.fetch import FetchFailed
from vidgate.providers.base import StepContext, UpstreamJob
from vidgate.runtime import Runtime
from vidgate.store.task_rows import Claim
from vidgate.worker.deps import StepDeps
from vidgate.worker.outcomes import Outcome
from vidgate.worker.steps import Steps

T0 = 1_760_000_000_000
LEASE_MS = 60_000
SPEC = VideoSpec("sora-2", "a red fox in the snow", (), 720, 1280, 10, WatermarkMode.PREFER_CLEAN)


class FakeProvider:
    """An upstream that answers each call with the next answer scripted for it (`will`), then with its
    standing answer (`always`): a value, an exception to raise, or a function of the call's argument.
    A call nothing was scripted for fails the test. Every call is kept in `calls` as (operation, arg)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, Any]] = []
        self._answers: dict[str, deque[Any]] = defaultdict(deque)
        self._always: dict[str, Any] = {}

    def will(self, op: str, *answers: Any) -> FakeProvider:
        self._answers[op].extend(answers)
        return self

    def always(self, op: str, answer: Any) -> FakeProvider:
        self._always[op] = answer
        return self

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    def args(self, op: str) -> list[Any]:
        return [arg for name, arg in self.calls if name == op]

    async def _answer(self, op: str, arg: Any) -> Any:
        self.calls.append((op, arg))
        if self._answers[op]:
            answer = self._answers[op].popleft()
        elif op in self._always:
            answer = self._always[op]
        else:
            raise AssertionError(f"{self.name}: no answer scripted for {op}")
        if isinstance(answer, BaseException):
            raise answer
        return answer(arg) if callable(answer) else answer

    async def submit(self, request: Any, ctx: StepContext) -> Any:
        return await self._answer("submit", request)

    async def poll(self, job: UpstreamJob, ctx: StepContext) -> Any:
        return await self._answer("poll", job)

    async def fetch(self, job: UpstreamJob, status: Any, work_dir: Path, ctx: StepContext) -> Any:
        return await self._answer("fetch", (job, work_dir))

    async def cancel(self, job: UpstreamJob) -> None:
        await self._answer("cancel", job)

    async def find_jobs(self, request: Any) -> Sequence[UpstreamJob]:
        found: Sequence[UpstreamJob] = await self._answer("find_jobs", request)
        return found

    async def aclose(self) -> None:
        return None


class FakeFetcher:
    """The SSRF-safe fetcher's seam: image bytes per URL, and a webhook receiver answering `status`."""

    def __init__(self, images: dict[str, bytes] | None = None, status: int | Exception = 204) -> None:
        self.images = images or {}
        self.status = status
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []

    async def fetch_bytes(self, url: str, **_: Any) -> Any:
        if url not in self.images:
            raise FetchFailed("the host answered HTTP 404", http_status=404)
        return type("Fetched", (), {"data": self.images[url]})()

    async def post_json(self, url: str, body: bytes, *, headers: dict[str, str], **_: Any) -> int:
        self.posts.append((url, body, headers))
        if isinstance(self.status, Exception):
            raise self.status
        return self.status


@dataclass
class FakeRun:
    """What the runner gives a step (`StepRun`): the newest claim, and whether a paid submit is in flight."""

    claims: list[Claim] = field(default_factory=list)
    paid_in_flight: list[bool] = field(default_factory=list)

    def new_claim(self, claim: Claim) -> None:
        self.claims.append(claim)

    @contextmanager
    def submit_in_flight(self, *, paid: bool) -> Iterator[None]:
        self.paid_in_flight.append(paid)
        yield


@dataclass
class World:
    runtime: Runtime
    clock: ManualClock
    upstreams: dict[str, FakeProvider]
    work_dir: Path
    owner: str = ""
    deps: StepDeps = field(init=False)
    steps: Steps = field(init=False)

    def __post_init__(self) -> None:
        rt = self.runtime
        self.deps = StepDeps(
            settings=rt.settings,
            store=rt.tasks,
            attempts=rt.attempts,
            health=rt.health,
            blobs=rt.blobs,
            catalog=rt.catalog,
            providers=lambda name: self.upstreams[name],  # type: ignore[arg-type,return-value]
            fetcher=rt.fetcher,
            clock=DatabaseAlignedClock(self.clock),
        )
        self.steps = Steps(self.deps)

    async def new_task(self, spec: VideoSpec = SPEC, *, deadline_s: float = 3600, **kw: Any) -> Task:
        if not self.owner:
            key, _ = await self.runtime.keys.create(name="owner", is_admin=False, now=T0)
            self.owner = key.id
        return await self.runtime.tasks.create(
            spec,
            owner=self.owner,
            dialect="unified",
            now=self.clock.now_ms(),
            deadline_ms=round(deadline_s * 1000),
            **kw,
        )

    async def claim(self, task_id: str) -> Claim:
        """Claim the task now (the clock moved to its due time first)."""
        task = await self.runtime.tasks.get(task_id)
        assert task is not None
        if task.next_run_at > self.clock.now_ms():
            self.clock.advance((task.next_run_at - self.clock.now_ms()) / 1000)
        claims = await self.runtime.tasks.claim_due(worker="w", limit=100, lease_ms=LEASE_MS)
        for other in claims:
            if other.task.id != task_id:  # another task of the test, due too: not this turn's
                assert await self.runtime.tasks.release(other)
        mine = [c for c in claims if c.task.id == task_id]
        assert mine, "the task was not due"
        return mine[0]

    async def commit(self, claim: Claim, outcome: Outcome) -> Task:
        """Record the outcome and give the lease back, as the runner does."""
        task = await self.runtime.tasks.finish_step(
            claim,
            now=self.clock.now_ms(),
            next_step=outcome.next_step,
            delay_ms=round(outcome.delay_seconds * 1000),
            status=outcome.status,
            changes=outcome.changes,
            message=outcome.message,
        )
        assert task is not None, "the claim was lost"
        return task

    async def step(self, task_id: str) -> tuple[Outcome, Task]:
        """Claim the task once it is due, run its step and commit the outcome: one turn of the runner."""
        claim = await self.claim(task_id)
        run = FakeRun()
        outcome = await self.run(claim, run)
        return outcome, await self.commit(run.claims[-1] if run.claims else claim, outcome)

    def ctx(self, task: Task) -> StepContext:
        async def report(_: int) -> None:
            return None

        self.work_dir.mkdir(parents=True, exist_ok=True)
        return StepContext(task.id, self.work_dir, report)

    async def run(self, claim: Claim, run: FakeRun | None = None) -> Outcome:
        """Run the claimed task's current step, as the runner does."""
        return await self.steps.run(claim, self.ctx(claim.task), run or FakeRun())

    async def run_as(self, task: Task, **changes: Any) -> Outcome:
        """Run the step of `task` as it would be with `changes` (for steps that write nothing)."""
        changed = replace(task, **changes)
        return await self.steps.run(Claim(changed, "w"), self.ctx(changed), FakeRun())
