"""Chaos: many tasks with injected upstream faults, while worker processes are killed with SIGKILL every
few seconds and restarted (for the first half of the tasks' deadline; then they finish in peace). At
the end:

- every task is terminal in the state its fault calls for on its channel, and its events form a path;
- paid submits you can trust (docs/channels.md "Paid submits"), from the fake upstream's journal (every
  job it made, with the Idempotency-Key `<task>-<n>` that made it) and the `upstream_attempts` table:
  for every task, the jobs made for it = the jobs its attempts know (identical twins may swap jobs, so
  they are compared as a group), except a job whose answer was lost on a channel that can neither be
  asked nor stopped, which the task may not claim; no job is owned by two tasks; no job of a failed or
  cancelled task is left running on the channel that can stop jobs;
- the key that paid was charged exactly the price of its completed tasks (every hold resolved once).

Three channels on one fake upstream, so that every fault meets each way of learning a lost outcome:
`openai-up` (OpenAI dialect: ignores keys, lists and deletes its jobs), `relay-dedupe` (unified dialect,
honours Idempotency-Key: the same submission is sent again) and `relay-blind` (unified, ignores keys:
a create of unknown outcome is never sent again, the task fails at its deadline). The fake dedupes keys
only where the channel says it does (`X-Fake: no_idempotency` on the others), so a blind resend would
show up as a second job.

Bounded and loopback only. The default run (CI) is short; `make chaos` runs the full one:
300 tasks over 3 `vidgate worker` processes on PostgreSQL (`VIDGATE_CHAOS_TASKS=300`). The SQLite
version kills and restarts one `vidgate serve` process with its embedded worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import random
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.processes import Deployment, FakeUpstreamProcess, write_config
from tests.ledger_checks import Rows, check_ledger, read_ledger
from vidgate.domain.lifecycle import ALLOWED
from vidgate.domain.tasks import TaskStatus
from vidgate.money import parse_credits
from vidgate.store import db
from vidgate.store.tables import task_events, tasks, upstream_attempts
from vidgate.testing.databases import create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.chaos]
FAKE_KEY = "sk-chaos"
PG_TASKS = int(os.environ.get("VIDGATE_CHAOS_TASKS", "60"))
SQLITE_TASKS = int(os.environ.get("VIDGATE_CHAOS_SQLITE_TASKS", "30"))

UNKNOWN = "upstream_outcome_unknown"
OPENAI_TIMEOUT_S = 2  # openai-up's request timeout
RELAY_TIMEOUT_S = 3  # the relays' request timeout
LOOKUP_WINDOW_S = 8  # openai-up looks for a job of unknown outcome from sent + 2 s to sent + 8 s
HANG_S = 6  # the fake holds a hung answer this long: longer than every request timeout
SLOW_CREATE_S = 4  # a create slower than every request timeout, whose job appears within the window
TWINS = 3  # tasks per group of identical twins


@dataclass(frozen=True)
class Expect:
    status: str = "completed"  # what the task must end as
    code: str | tuple[str, ...] | None = None  # its error code (or one of these), when failed
    jobs: tuple[int, ...] = (1,)  # how many upstream jobs it may make

    def allows(self, status: str, code: str | None) -> bool:
        if status != self.status:
            return False
        if status != "failed":
            return True
        return code in self.code if isinstance(self.code, tuple) else code == self.code


# A job was made and its answer lost, on a channel that can neither dedupe nor be asked: never sent
# again, the task fails at its deadline (the job runs on upstream, unclaimed: nothing can stop it).
LOST = Expect("failed", UNKNOWN, (1,))


@dataclass(frozen=True)
class Fault:
    directives: str
    openai: Expect = Expect()  # on openai-up
    dedupe: Expect = Expect()  # on relay-dedupe
    blind: Expect = Expect()  # on relay-blind
    cancel: bool = False  # the client cancels the task a few seconds in

    def expect(self, kind: str) -> Expect:
        expected: Expect = getattr(self, kind)
        return expected


def everywhere(directives: str, expect: Expect, *, cancel: bool = False) -> Fault:
    return Fault(directives, openai=expect, dedupe=expect, blind=expect, cancel=cancel)


# Every fault the fake can inject, with what each channel must make of it. Only proven refusals (429,
# a 400) allow another create; anything else after a create went out is an unknown outcome.
FAULTS = [
    Fault(""),
    Fault("#429=2"),
    # 503 before the job was made: unknown all the same. openai-up finds nothing over its window and
    # sends again (twice); relay-dedupe replays the key; relay-blind cannot know, and never resends.
    Fault("#5xx=2", blind=Expect("failed", UNKNOWN, (0,))),
    Fault("#accept_then_drop=1", blind=LOST),
    Fault("#accept_then_hang=1", blind=LOST),
    Fault("#accept_then_5xx=1", blind=LOST),  # job made, then a Cloudflare 502 page
    # Slower than every timeout, on every create of the prompt: openai-up finds the job once it
    # appears; relay-dedupe's replays of the key all time out too, so the outcome stays unknown until
    # max_attempts (the one job its key made runs on upstream, unclaimed) or, when every worker that
    # sent it was killed before its timeout (no error ever recorded), the deadline says `timeout`;
    # relay-blind never resends.
    Fault(
        f"#create_latency={SLOW_CREATE_S}",
        dedupe=Expect("failed", (UNKNOWN, "timeout"), (1,)),
        blind=LOST,
    ),
    Fault("#poll5xx=2"),
    Fault("#poll_hang=1"),
    Fault("#malformed=1"),
    Fault("#synonyms"),
    Fault("#unknown_status=2"),
    Fault("#expired_link=1"),
    everywhere("#moderation", Expect("failed", "content_policy", (0,))),
    everywhere("#fail=invalid_prompt", Expect("failed", "invalid_prompt")),
    # Cancelled at a random moment (before, during or after its submit): a job made is stopped where
    # the channel can stop it.
    everywhere("#ready=600", Expect("cancelled", None, (0, 1)), cancel=True),
    # ... also after a create whose answer was lost: openai-up's cancel step looks the job up to stop it.
    everywhere("#ready=600 #accept_then_drop=1", Expect("cancelled", None, (0, 1)), cancel=True),
]
# Identical twins: TWINS tasks with exactly the same prompt, model, size and seconds; all answers but
# one are lost after their jobs were made, so lookups (openai-up) cannot tell the jobs apart by content.
TWIN_FAULT = Fault(f"#ready=6 #accept_then_drop={TWINS - 1}")
TWIN_KINDS = ("openai", "dedupe")

# kind of channel -> (its name, the public model routed to it)
CHANNELS = {
    "openai": ("openai-up", "sora-2"),
    "dedupe": ("relay-dedupe", "sora-2-pro"),
    "blind": ("relay-blind", "veo-3"),
}
KINDS = tuple(CHANNELS)
CAN_STOP = {"openai"}  # the channels that can stop (delete) a job
CAN_ASK = {"openai"}  # the channels that can be asked for a job (GET /videos)

# Every task is priced, so the ledger goes through every kill too: 10 s of sora-2 costs 2 credits
# (1 per clip + 0.1 per second), sora-2-pro 3 per clip, veo-3 4.
PRICING = {
    "sora-2": {"per_clip": 1, "per_second": "0.1"},
    "sora-2-pro": {"per_clip": 3},
    "veo-3": {"per_clip": 4},
}
PRICE = {"sora-2": parse_credits("2"), "sora-2-pro": parse_credits("3"), "veo-3": parse_credits("4")}
OPENING_BALANCE = "100000"


def deadline_for(tasks_count: int) -> float:
    """The tasks' deadline (s): what the slowest faults need under kills, plus time to work through
    many tasks. The tasks whose outcome stays unknown on relay-blind end only then."""
    return 75 + tasks_count * 0.15


def chaos_config(path: Path, upstream: str, *, deadline_s: float) -> Path:
    common = {"api_key": FAKE_KEY, "base_url": f"{upstream}/v1", "poll_timeout_seconds": 2}
    keyless = {"honours_idempotency_key": False, "headers": {"X-Fake": "no_idempotency"}}
    relay = {"kind": "unified", "request_timeout_seconds": RELAY_TIMEOUT_S, **common}
    return write_config(
        path,
        worker={
            "concurrency": 16,
            "lease_seconds": 3,
            "idle_poll_seconds": 0.2,
            "retry_base_seconds": 0.2,
            "retry_max_seconds": 2,
            "task_deadline_seconds": deadline_s,
            "circuit_failures": 1000,
        },
        channels=[
            {
                "name": "openai-up",
                "kind": "openai",
                "models": ["sora-2"],
                "request_timeout_seconds": OPENAI_TIMEOUT_S,
                "lookup_window_seconds": LOOKUP_WINDOW_S,
                **common,
                **keyless,
                "pricing": {"sora-2": PRICING["sora-2"]},
            },
            {
                "name": "relay-dedupe",
                "models": ["sora-2-pro"],
                **relay,
                "honours_idempotency_key": True,
                "pricing": {"sora-2-pro": PRICING["sora-2-pro"]},
            },
            {
                "name": "relay-blind",
                "models": ["veo-3"],
                **relay,
                **keyless,
                "pricing": {"veo-3": PRICING["veo-3"]},
            },
        ],
    )


@dataclass(frozen=True)
class Planned:
    text: str
    fault: Fault
    kind: str  # of channel (CHANNELS)
    group: str  # the twins' group, or the task itself

    @property
    def label(self) -> str:
        return f"twins {self.fault.directives}" if self.group.startswith("twins") else self.fault.directives


@dataclass
class Plan:
    tasks: dict[str, Planned] = field(default_factory=dict)  # by task ULID
    cancels: list[str] = field(default_factory=list)  # tasks the client cancels


def create_tasks(dep: Deployment, key: str, n: int, seed: int) -> Plan:
    """`n` tasks, each fault on each kind of channel in turn, then a group of identical twins per kind
    that looks jobs up or dedupes. `key`: made with OPENING_BALANCE (see `new_paying_key`)."""
    rng = random.Random(seed)
    plan = Plan()
    with dep.client(key, timeout=30) as api:

        def create(kind: str, text: str) -> str:
            body = {"model": CHANNELS[kind][1], "prompt": text, "duration": 10}
            r = api.post("/v1/video/create", json=body)
            assert r.status_code == 200, r.text
            task_id: str = r.json()["id"].rsplit("_", 1)[-1]
            return task_id

        for i in range(n):
            fault = FAULTS[i % len(FAULTS)]
            kind = KINDS[(i % len(FAULTS) + i // len(FAULTS)) % len(KINDS)]  # each fault, each kind in turn
            text = f"chaos task {i} {rng.randrange(10**9)} #ready={rng.uniform(4, 24):.1f} {fault.directives}"
            task_id = create(kind, text.strip())
            plan.tasks[task_id] = Planned(text.strip(), fault, kind, task_id)
            if fault.cancel:
                plan.cancels.append(task_id)
        for g, kind in enumerate(TWIN_KINDS):
            text = f"chaos twins {g} {rng.randrange(10**9)} {TWIN_FAULT.directives}"
            for _ in range(TWINS):
                plan.tasks[create(kind, text)] = Planned(text, TWIN_FAULT, kind, f"twins {g}")
    return plan


@dataclass(frozen=True)
class Attempt:
    task_id: str
    number: int
    channel: str
    key: str
    outcome: str
    upstream_id: str | None


@dataclass
class DbState:
    states: dict[str, tuple[str, str | None]]
    paths: dict[str, list[tuple[str, str]]]
    attempts: dict[str, list[Attempt]]
    trails: dict[str, list[str]]  # each task's events, `kind: message` (for a failure's report)
    steps: dict[str, str]  # the step each task stands at


async def _rows(url: str) -> DbState:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            states, steps = {}, {}
            for r in await conn.execute(select(tasks.c.id, tasks.c.status, tasks.c.error_code, tasks.c.step)):
                states[r[0]], steps[r[0]] = (r[1], r[2]), r[3]
            e = task_events.c
            query = select(e.task_id, e.kind, e.from_status, e.to_status, e.message)
            paths: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
            trails: dict[str, list[str]] = collections.defaultdict(list)
            for task_id, kind, from_status, to_status, message in await conn.execute(query.order_by(e.id)):
                if kind in ("created", "status"):
                    paths[task_id].append((from_status or "", to_status))
                trails[task_id].append(f"{kind}: {message or to_status}")
            a = upstream_attempts.c
            attempts: dict[str, list[Attempt]] = collections.defaultdict(list)
            rows = await conn.execute(
                select(a.task_id, a.number, a.channel, a.idempotency_key, a.outcome, a.upstream_id).order_by(
                    a.task_id, a.number
                )
            )
            for row in rows:
                attempts[row[0]].append(Attempt(*row))
        return DbState(states, paths, attempts, trails, steps)
    finally:
        await engine.dispose()


def new_paying_key(dep: Deployment) -> str:
    return dep.new_key("--balance", OPENING_BALANCE)


async def _ledger(url: str) -> tuple[Rows, Rows, Rows]:
    engine = db.create_engine(url)
    try:
        return await read_ledger(engine)
    finally:
        await engine.dispose()


def check_charges(url: str, plan: Plan) -> None:
    """Every hold resolved exactly once; completed tasks charged their price, the others refunded."""
    keys, entries, task_rows = asyncio.run(_ledger(url))
    moves = check_ledger(keys, entries, task_rows)
    assert set(plan.tasks) <= {row["id"] for row in task_rows}
    charged = 0
    for row in task_rows:
        assert row["hold_amount"] == PRICE[row["model"]], row
        expected = row["hold_amount"] if row["status"] == "completed" else 0
        assert moves[row["id"]].get("capture", 0) == expected, (row, moves[row["id"]])
        charged += expected
    [paying] = [k for k in keys if k["balance"] is not None]
    assert paying["balance"] == parse_credits(OPENING_BALANCE) - charged
    assert paying["held"] == 0


async def _busy(url: str) -> int:
    """Tasks still running, or ended with their cancel step (stopping the upstream job) still due."""
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            query = select(tasks.c.id).where(
                tasks.c.status.in_(("pending", "processing")) | (tasks.c.step == "cancel")
            )
            return len((await conn.execute(query)).all())
    finally:
        await engine.dispose()


def busy_count(url: str) -> int:
    return asyncio.run(_busy(url))


@dataclass
class Tally:
    """What the run did, for the report at the end."""

    jobs: dict[tuple[str, str], collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    unclaimed: int = 0  # jobs made whose answer was lost on a channel that cannot be asked
    deleted: int = 0
    swapped: int = 0  # twins that own a job a sibling's key made (a lookup cannot tell them apart)
    cancels: collections.Counter[str] = field(default_factory=collections.Counter)

    def report(self) -> str:
        lines = ["paid jobs per task (fault / channel kind: {jobs: tasks}):"]
        for (label, kind), counts in sorted(self.jobs.items()):
            lines.append(f"  {label or '(none)':34} {kind:7} {dict(sorted(counts.items()))}")
        lines.append(f"cancelled tasks (channel: jobs made/stopped): {dict(sorted(self.cancels.items()))}")
        lines.append(f"twins owning a sibling's job: {self.swapped}")
        lines.append(f"attempt outcomes: {dict(sorted(self.outcomes.items()))}")
        lines.append(
            f"jobs stopped (DELETE): {self.deleted}; unclaimed on blind/deduping relays: {self.unclaimed}"
        )
        return "\n".join(lines)


def check_outcome(url: str, plan: Plan, upstream: FakeUpstreamProcess, tally: Tally, run: str = "") -> None:
    """Each task's end and event path, then the paid-submit invariant over the journal and attempts.
    `run`: how the run went (kills, starts), printed first if anything is wrong."""
    rows = asyncio.run(_rows(url))
    problems = []
    for task_id, planned in plan.tasks.items():
        status, code = rows.states[task_id]
        expected = planned.fault.expect(planned.kind)
        got = (status, code if status == "failed" else None)
        if not expected.allows(*got) and not _killed_mid_create(planned, rows, task_id, got):
            trail = " | ".join(rows.trails[task_id][-4:])
            problems.append(
                f"{task_id} {planned.kind} {planned.label!r}: ended {status}/{code} at step "
                f"{rows.steps[task_id]}; last events: {trail}"
            )
        path = rows.paths[task_id]
        if not path or path[0] != ("", "pending"):
            problems.append(f"{task_id}: events do not start with created/pending: {path}")
        for (_, before), (frm, to) in itertools.pairwise(path):
            if frm != before or TaskStatus(to) not in ALLOWED[TaskStatus(before)]:
                problems.append(f"{task_id}: invalid transition {before} -> {frm}->{to} in {path}")
        terminal = [to for _, to in path if TaskStatus(to).is_terminal]
        if terminal != [status]:
            problems.append(f"{task_id}: terminal events {terminal}, final status {status}")
    problems += check_jobs(plan, rows, upstream, tally)
    assert not problems, "\n".join([run, *problems[:60]])


def _killed_mid_create(planned: Planned, rows: DbState, task_id: str, got: tuple[str, str | None]) -> bool:
    """A worker killed while its create to relay-blind was out leaves the attempt `pending`: nothing
    can tell whether the job was made, so the task rightly fails at its deadline, whatever its fault."""
    return (
        planned.kind == "blind"
        and got == ("failed", UNKNOWN)
        and any(a.outcome == "pending" for a in rows.attempts[task_id])
    )


def check_jobs(plan: Plan, rows: DbState, upstream: FakeUpstreamProcess, tally: Tally) -> list[str]:
    """For every task, the jobs the fake made for it (by the Idempotency-Key that made each) are the jobs
    its attempts know, and as many as its fault calls for. Identical twins are compared as a group: a
    lookup cannot tell their jobs apart, so one may own a job its sibling's key made, as long as every
    job of the group has exactly one owner in it. A job no attempt knows is allowed only on a relay (no
    way to ask), made by a submission whose attempts never learnt an id, for a task that did not
    complete. No job has two owners. No job of a failed or cancelled task runs on openai-up, which can
    stop it."""
    problems: list[str] = []
    journal = upstream.journal()
    made_by: dict[str, str] = {}  # job -> its idempotency key
    made: dict[str, set[str]] = collections.defaultdict(set)  # task -> jobs its keys made
    for entry in journal:
        if entry["op"] == "create":
            key = entry["key"] or ""
            made_by[entry["job"]] = key
            made[key.rsplit("-", 1)[0]].add(entry["job"])
    stopped = {e["job"] for e in journal if e["op"] == "delete" and e["status"] < 300}
    tally.deleted = len(stopped)
    unknown_tasks = set(made) - set(plan.tasks)
    if unknown_tasks:
        problems.append(f"jobs made for tasks the test did not create: {sorted(unknown_tasks)}")

    owners: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    known: dict[str, set[str]] = collections.defaultdict(set)
    for task_id, attempts in rows.attempts.items():
        for a in attempts:
            tally.outcomes[a.outcome] += 1
            if a.upstream_id is not None:
                owners[(a.channel, a.upstream_id)].add(task_id)
                known[task_id].add(a.upstream_id)
    for (channel, job), tasks_ in owners.items():
        if len(tasks_) > 1:
            problems.append(f"job {job} on {channel} is owned by {len(tasks_)} tasks: {sorted(tasks_)}")

    groups: dict[str, list[str]] = collections.defaultdict(list)
    for task_id, planned in plan.tasks.items():
        groups[planned.group].append(task_id)
        channel = CHANNELS[planned.kind][0]
        if any(a.channel != channel for a in rows.attempts[task_id]):
            problems.append(f"{task_id}: an attempt on another channel than {channel}")

    unclaimed: dict[str, set[str]] = collections.defaultdict(set)  # task -> jobs it made, nobody knows
    for group, members in groups.items():
        group_made = set().union(*(made[t] for t in members))
        group_known = set().union(*(known[t] for t in members))
        for job in sorted(group_known - group_made):
            problems.append(f"{group}: its attempts know job {job}, which none of its tasks made")
        for job in sorted(group_made - group_known):
            key = made_by[job]
            task_id = key.rsplit("-", 1)[0]
            planned = plan.tasks[task_id]
            learnt = any(a.key == key and a.upstream_id for a in rows.attempts[task_id])
            status, _ = rows.states[task_id]
            if planned.kind in CAN_ASK or learnt or status == "completed":
                problems.append(
                    f"{task_id} {planned.kind} {planned.label!r}: job {job} (key {key}) was made and no "
                    f"attempt knows it; attempts: {rows.attempts[task_id]}"
                )
            else:
                unclaimed[task_id].add(job)
                tally.unclaimed += 1
        tally.swapped += sum(1 for t in members if known[t] - made[t])

    for task_id, planned in plan.tasks.items():
        # Its jobs: those its attempts own, and one its lost answer made on a relay that cannot be asked.
        # (Outside a group of twins these are exactly the jobs its keys made: checked above.)
        jobs = len(known[task_id]) + len(unclaimed[task_id])
        tally.jobs[(planned.label, planned.kind)][jobs] += 1
        expected = planned.fault.expect(planned.kind).jobs
        status, code = rows.states[task_id]
        if jobs not in expected and not (
            _killed_mid_create(planned, rows, task_id, (status, code)) and jobs <= 1
        ):
            problems.append(
                f"{task_id} {planned.kind} {planned.label!r}: {jobs} upstream jobs (it made "
                f"{sorted(made[task_id])}, owns {sorted(known[task_id])}), want {expected}"
            )

    running = upstream.running_openai_jobs()
    for task_id, planned in plan.tasks.items():
        status, _ = rows.states[task_id]
        if planned.fault.cancel:
            jobs = made[task_id] | known[task_id]
            tally.cancels[f"{planned.kind}: {len(jobs)}/{len(jobs & stopped)}"] += 1
        if planned.kind not in CAN_STOP or status not in ("failed", "cancelled"):
            continue
        for job in sorted((made[task_id] | known[task_id]) & running):
            stop = "stopped" if job in stopped else "never stopped"
            problems.append(f"{task_id} {planned.label!r} ended {status}, its job {job} still runs ({stop})")
    return problems


def killer_loop(
    dep: Deployment,
    roles: list[tuple[str, tuple[str, ...]]],
    url: str,
    *,
    every: tuple[float, float],
    kill_for: float,
    deadline_s: float,
    seed: int,
    actions: Mapping[float, Callable[[], bool]] | None = None,
) -> int:
    """Every few seconds (`every`), kill a random process of `roles` with SIGKILL and restart it, until no
    task is busy (or the deadline passes). `actions`: run each once its time (seconds from the start) has
    come, again later while it answers False. Returns how many kills there were.

    Only a process that has worked a few seconds (`every` again) since its worker started is killed: a
    start-up (imports, migrations) takes 3 s on an idle 2-core machine and more on a loaded one, so
    counting from the spawn would kill most processes before they did any work, and whether the tasks
    end in time would measure the machine's load.

    Kills stop `kill_for` seconds after the start, and the processes then work undisturbed until every
    task has ended: on a loaded machine a step can take longer than a process lives (a result copy's
    first call into a fresh worker's media processes starts them), and it would then never finish."""
    rng = random.Random(seed)
    lives = {name: _Life.start(dep, name, args) for name, args in roles}
    kills = 0
    start = time.monotonic()
    deadline = start + deadline_s
    next_kill = start + rng.uniform(*every)
    pending = sorted((actions or {}).items())
    while pending or busy_count(url):
        assert time.monotonic() < deadline, "the tasks did not all end in time"
        now = time.monotonic()
        pending = [(at, act) for at, act in pending if now < start + at or not act()]
        for life in lives.values():
            life.notice_start(dep, rng, every)
        ripe = [name for name, life in lives.items() if life.kill_at is not None and now >= life.kill_at]
        if ripe and now >= next_kill and now < start + kill_for:
            name = rng.choice(ripe)
            Deployment.kill9(lives[name].proc)
            kills += 1
            lives[name] = _Life.start(dep, name, lives[name].args)
            next_kill = time.monotonic() + rng.uniform(*every)
        time.sleep(0.25)
    return kills


@dataclass
class _Life:
    """One process of a role, from its spawn to its SIGKILL."""

    proc: subprocess.Popen[bytes]
    args: tuple[str, ...]
    name: str
    starts_before: int  # "worker started" lines in the role's log before this process was spawned
    kill_at: float | None = None  # set once this process's worker has started

    @classmethod
    def start(cls, dep: Deployment, name: str, args: tuple[str, ...]) -> _Life:
        before = _worker_starts(dep, name)
        return cls(dep.start(*args, log_name=name), args, name, before)

    def notice_start(self, dep: Deployment, rng: random.Random, every: tuple[float, float]) -> None:
        if self.kill_at is not None:
            return
        assert self.proc.poll() is None, f"{self.name} exited by itself: {dep.log(self.name)[-3000:]}"
        if _worker_starts(dep, self.name) > self.starts_before:
            self.kill_at = time.monotonic() + rng.uniform(*every)


def _worker_starts(dep: Deployment, name: str) -> int:
    return dep.log(name).count('"worker started"')


def cancel_actions(dep: Deployment, key: str, plan: Plan, seed: int) -> dict[float, Callable[[], bool]]:
    """Cancel each task of `plan.cancels` at a random moment after the workers start (later the more
    tasks there are to get through): before, during or after its submit (an action answers False while
    the API is down, as when the serving process was just killed)."""
    rng = random.Random(seed)

    def cancel(task_id: str) -> Callable[[], bool]:
        def act() -> bool:
            try:
                with dep.client(key, timeout=10) as api:
                    r = api.post(f"/v1/videos/video_{task_id}/cancel")
            except httpx.TransportError:
                return False
            if r.status_code >= 500:
                return False
            assert r.status_code == 200, (task_id, r.status_code, r.text)
            return True

        return act

    latest = 10 + len(plan.tasks) / 10
    return {rng.uniform(2, latest) + i * 1e-6: cancel(t) for i, t in enumerate(plan.cancels)}


def run_report(dep: Deployment, names: list[str], kills: int) -> str:
    """The kills, and how often each role's worker started (a start-up slower than the kill pace shows
    as few starts; a worker stuck after its start as starts with no progress in the task events)."""
    starts = {name: _worker_starts(dep, name) for name in names}
    return f"{kills} SIGKILLs; worker starts per role: {starts}"


def summary(what: str, tasks_count: int, kills: int, started: float, tally: Tally) -> str:
    took = time.monotonic() - started
    return f"\n{what}: {tasks_count} tasks, {kills} SIGKILLs, {took:.0f} s\n{tally.report()}"


@pytest.mark.postgres
def test_chaos_three_workers_on_postgres_killed_at_random(tmp_path: Path, pg_admin_url: str) -> None:
    url = create_pg_database(pg_admin_url)
    config = tmp_path / "vidgate.toml"
    dep = Deployment(tmp_path, url, config)
    deadline_s = deadline_for(PG_TASKS)
    with contextlib.ExitStack() as stack:
        stack.callback(drop_pg_database, pg_admin_url, url)
        stack.callback(dep.stop_all)
        upstream = FakeUpstreamProcess(dep, api_key=FAKE_KEY, ready=2, hang=HANG_S, poll_after_ms=300)
        chaos_config(config, upstream.url, deadline_s=deadline_s)
        key = new_paying_key(dep)
        dep.serve("--no-worker")
        started = time.monotonic()
        plan = create_tasks(dep, key, PG_TASKS, seed=7)
        roles = [(f"worker{i}", ("worker",)) for i in range(3)]
        kills = killer_loop(
            dep,
            roles,
            url,
            every=(1.5, 3.5),
            kill_for=deadline_s / 2,
            deadline_s=deadline_s + 120 + PG_TASKS,
            seed=11,
            actions=cancel_actions(dep, key, plan, seed=13),
        )
        tally = Tally()
        check_outcome(url, plan, upstream, tally, run=run_report(dep, [name for name, _ in roles], kills))
        check_charges(url, plan)
        print(summary("chaos (postgres, 3 workers)", len(plan.tasks), kills, started, tally))
    for i in range(3):
        assert "Traceback" not in dep.log(f"worker{i}"), dep.log(f"worker{i}")[-3000:]


def test_chaos_one_serving_process_on_sqlite_killed_at_random(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"
    config = tmp_path / "vidgate.toml"
    dep = Deployment(tmp_path, url, config)
    deadline_s = deadline_for(SQLITE_TASKS)
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        upstream = FakeUpstreamProcess(dep, api_key=FAKE_KEY, ready=2, hang=HANG_S, poll_after_ms=300)
        chaos_config(config, upstream.url, deadline_s=deadline_s)
        key = new_paying_key(dep)
        server = dep.serve()
        started = time.monotonic()
        plan = create_tasks(dep, key, SQLITE_TASKS, seed=3)
        Deployment.kill9(server)  # from here on the killer owns the serving process
        dep.processes.remove(server)
        kills = killer_loop(
            dep,
            [("serve", ("serve",))],
            url,
            every=(2.0, 5.0),
            kill_for=deadline_s / 2,
            deadline_s=deadline_s + 120 + SQLITE_TASKS,
            seed=5,
            actions=cancel_actions(dep, key, plan, seed=17),
        )
        tally = Tally()
        check_outcome(url, plan, upstream, tally, run=run_report(dep, ["serve"], kills))
        check_charges(url, plan)
        print(summary("chaos (sqlite, 1 process)", len(plan.tasks), kills, started, tally))
    assert "Traceback" not in dep.log("serve"), dep.log("serve")[-3000:]
