"""One paid-submits contract for the native vendor kinds (`veo`, `seedance`, `dashscope`, `kling`,
`minimax`), each through the real gateway and worker against its dialect in the shipped fake upstream,
over loopback, and for the aggregator kinds (`fal`, `replicate`, `openrouter`; fal: no lookup, OpenRouter:
neither lookup nor cancel).

Every test runs once per kind (the `vendor` fixture) and proves the same guarantee with the fake's
journal: how many jobs the vendor really made, what it was asked to stop. Where a kind cannot do
something (Veo and MiniMax have no job lookup and no cancel, `ChannelTraits()`; Kling no cancel), the
test asserts what the gateway documents instead: nothing sent again after an unknown outcome, the task
failing at its deadline with `upstream_outcome_unknown`, and a cancel recorded as impossible in the
task's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import av
import httpx
import pytest

from tests.aggregator_presets import FAL_MODELS, FAL_VEO, REPLICATE_MODELS, REPLICATE_VEO
from tests.contract.conftest import FAKE_KEY, FakeServer, gateway_options, upstream_channel
from tests.contract.test_upstream_contract import settled
from tests.helpers import query, until, wait_for_status
from vidgate.config import ChannelSettings
from vidgate.domain.routing import ChannelTraits
from vidgate.ids import parse_task_id
from vidgate.providers.registry import profile_for
from vidgate.store.attempts import AttemptOutcome
from vidgate.testing.databases import create_pg_database, drop_pg_database

pytestmark = pytest.mark.anyio

CHANNEL = "vendor"
# How long a kind that cannot be asked keeps a task of unknown outcome before failing it (seconds):
# the bound of the "never sent again" waits below.
UNKNOWN_DEADLINE_S = 4


@dataclass(frozen=True)
class Vendor:
    """One native vendor kind: how to reach its fake, a model and a create body it takes, its traits."""

    kind: str
    api_root: str  # the channel's base_url below the fake's origin
    model: str
    body: dict[str, Any]  # a valid unified-dialect create body for `model` (without the prompt)
    traits: ChannelTraits
    cancel_op: str | None  # the journal op of the vendor's cancel (None: it has none)
    options: dict[str, Any] = field(default_factory=dict)
    takes_seed: bool = True  # Kling and MiniMax take none: the create test sends one only where it can
    # The public name -> the upstream id, where the upstream's has a "/" (an aggregator's `owner/model`):
    # a unified task id is `<model>:task_<ulid>`, and a "/" in it would not fit a /v1/videos/{id} path.
    upstream: str | None = None

    def channel(self, server: FakeServer, **overrides: Any) -> ChannelSettings:
        return upstream_channel(
            self.kind,
            server,
            name=CHANNEL,
            base_url=f"{server.url}{self.api_root}",
            models=[self.model],
            model_map={self.model: self.upstream} if self.upstream else {},
            options=dict(self.options),
            **overrides,
        )

    def upstream_id(self, made: Any) -> str:
        """The id the vendor answered for a job the fake journalled (Veo's is the operation's name; the
        fake journals its own `model:short_id`)."""
        job: str = made.job
        if self.kind == "veo":
            model, _, short = job.partition(":")
            return f"models/{model}/operations/{short}"
        return job

    def deadline(self) -> float:
        """The task deadline for the unknown-outcome tests: short where nothing can resolve the outcome."""
        return 30 if self.traits.can_find_jobs else UNKNOWN_DEADLINE_S


VENDORS: dict[str, Vendor] = {
    "veo": Vendor(
        kind="veo",
        api_root="/v1beta",
        model="veo-3.1-generate-preview",
        body={"duration": 8, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(),
        cancel_op=None,
        options={"poll_seconds": 0.05},
    ),
    "seedance": Vendor(
        kind="seedance",
        api_root="/api/v3",
        model="seedance-1-0-pro-250528",
        body={"duration": 5, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(can_cancel=True, can_find_jobs=True),
        cancel_op="delete",
        options={"poll_seconds": 0.05},
    ),
    "dashscope": Vendor(
        kind="dashscope",
        api_root="/api/v1",
        model="wan2.5-t2v-preview",
        body={"duration": 5, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(can_cancel=True, can_find_jobs=True),
        cancel_op="cancel",
        options={"poll_seconds": 0.05},
    ),
    "kling": Vendor(
        kind="kling",
        api_root="",  # the API host: the adapter writes the /v1/videos/... paths
        model="kling-v1-6",
        body={"duration": 5, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(can_find_jobs=True),  # by its external_task_id; no cancel
        cancel_op=None,
        options={"access_key": "ak-fake-upstream", "secret_key": FAKE_KEY, "poll_seconds": 0.05},
        takes_seed=False,
    ),
    "minimax": Vendor(
        kind="minimax",
        api_root="",  # the API host: the adapter writes the /v1/... paths
        model="MiniMax-Hailuo-2.3",
        body={"duration": 6, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(),  # no cancel, no lookup, no idempotency key
        cancel_op=None,
        options={"poll_seconds": 0.05},
        takes_seed=False,
    ),
    "fal": Vendor(
        kind="fal",
        api_root="/fal",  # the fake serves fal's queue (queue.fal.run) under /fal
        model="veo-3.1-fal",
        upstream=FAL_VEO,
        body={"duration": 8, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(can_cancel=True),  # no lookup: fal lists requests only once they end
        cancel_op="cancel",
        options={"poll_seconds": 0.05, "models": {FAL_VEO: FAL_MODELS[FAL_VEO]}},
    ),
    "replicate": Vendor(
        kind="replicate",
        api_root="/v1",
        model="veo-3.1-replicate",
        upstream=REPLICATE_VEO,
        body={"duration": 8, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(can_cancel=True, can_find_jobs=True),  # the prediction list, by input
        cancel_op="cancel",
        options={"poll_seconds": 0.05, "models": {REPLICATE_VEO: REPLICATE_MODELS[REPLICATE_VEO]}},
    ),
    "openrouter": Vendor(
        kind="openrouter",
        api_root="/api/v1",
        model="veo-3.1-openrouter",
        upstream="google/veo-3.1",
        body={"duration": 8, "aspect_ratio": "16:9", "resolution": "720p"},
        traits=ChannelTraits(),  # no cancel, no lookup, no idempotency key
        cancel_op=None,
        options={"poll_seconds": 0.05},
    ),
}


# The database behind the gateway is the same code for every kind, and the shared upstream contract
# runs all of it on both databases: here every kind runs on SQLite and one kind on PostgreSQL too, which
# keeps the suite's time from growing by a PostgreSQL run of every vendor.
ON_POSTGRES_TOO = "veo"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vendor" not in metafunc.fixturenames:
        return
    pairs = [pytest.param(kind, "sqlite", id=f"sqlite-{kind}") for kind in sorted(VENDORS)]
    if "db_url" in metafunc.fixturenames:
        on_pg = pytest.param(
            ON_POSTGRES_TOO, "postgres", id=f"postgres-{ON_POSTGRES_TOO}", marks=pytest.mark.postgres
        )
        metafunc.parametrize(("vendor", "database"), [*pairs, on_pg], indirect=True)
    else:
        metafunc.parametrize("vendor", sorted(VENDORS), indirect=True)


@pytest.fixture
def vendor(request: pytest.FixtureRequest) -> Vendor:
    return VENDORS[str(request.param)]


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, database: str, tmp_path: Path) -> Iterator[str]:
    """This module's database: the one its vendor is paired with (above), not both for every kind."""
    if database == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    url = create_pg_database(admin)
    try:
        yield url
    finally:
        drop_pg_database(admin, url)


def prompt(directives: str = "") -> str:
    """A prompt unique to the test (the fake counts faults per prompt), with the fake's directives."""
    return f"a lighthouse in the fog {uuid.uuid4().hex[:8]} {directives}".strip()


async def create(client: httpx.AsyncClient, vendor: Vendor, text: str, **fields: Any) -> str:
    body = {"model": vendor.model, "prompt": text, **vendor.body, **fields}
    response = await client.post("/v1/video/create", json=body)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["id"]
    return task_id


async def attempts_of(gw: Any, task_id: str) -> list[Any]:
    ulid = parse_task_id(task_id)
    assert ulid is not None
    return list(await gw.runtime.attempts.for_task(ulid))


async def events_of(gw: Any, task_id: str) -> list[Any]:
    ulid = parse_task_id(task_id)
    assert ulid is not None
    return list(await gw.runtime.tasks.events(ulid))


async def run_one(
    start_gateway: Any,
    server: FakeServer,
    vendor: Vendor,
    text: str,
    *,
    channel: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    **fields: Any,
) -> tuple[dict[str, Any], list[Any]]:
    """Create one task on a gateway with the vendor's channel; (its settled state, its attempts)."""
    options = gateway_options(vendor.channel(server, **(channel or {})), **(worker or {}))
    async with start_gateway(**options) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, vendor, text, **fields)
            final = await settled(gw, client, task_id)
            attempts = await attempts_of(gw, task_id)
    return final, attempts


def files_downloads(server: FakeServer, text: str) -> list[int]:
    """What the vendor's storage (the signed CDN links) answered for this prompt's videos, in order."""
    return [e.status for e in server.fake.journal.entries("download", text) if e.dialect == "files"]


# --------------------------------------------------------------------------------------------------


async def test_the_fixture_declares_what_each_kind_declares(vendor: Vendor, upstream: FakeServer) -> None:
    """The traits the tests below branch on are the ones routing and the worker read."""
    assert profile_for(vendor.channel(upstream)).traits == vendor.traits


async def test_text_to_video_lands_a_playable_mp4_in_our_storage_from_one_job(
    start_gateway, upstream: FakeServer, vendor: Vendor, tmp_path: Path
) -> None:
    text = prompt("#ready=0.3")
    async with start_gateway(**gateway_options(vendor.channel(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            seed = {"seed": 7} if vendor.takes_seed else {}
            final = await settled(gw, client, await create(client, vendor, text, **seed))
            assert final["status"] == "completed", final
            assert final["detail"]["channel"] == CHANNEL and final["progress"] == 100
            assert final["video_url"].startswith(gw.base_url)  # our copy, not the vendor's link
            async with httpx.AsyncClient() as plain:
                video = await plain.get(final["video_url"])
    assert video.status_code == 200
    path = tmp_path / "result.mp4"
    path.write_bytes(video.content)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) > 0
    [made] = upstream.fake.journal.creates(text)
    assert made.dialect == vendor.kind and made.job
    assert made.detail["seed"] == 7 if vendor.takes_seed else "seed" not in made.detail
    assert upstream.ops(text).count("rejected_create") == 0


async def test_a_429_on_create_is_retried_and_completes_with_one_job(
    start_gateway, upstream: FakeServer, vendor: Vendor
) -> None:
    text = prompt("#429=1 #retry_after=0.1")
    final, attempts = await run_one(start_gateway, upstream, vendor, text)
    assert final["status"] == "completed", final
    assert [e.status for e in upstream.fake.journal.entries("rejected_create", text)] == [429]
    [made] = upstream.fake.journal.creates(text)
    assert [a.outcome for a in attempts] == [AttemptOutcome.REFUSED, AttemptOutcome.ACCEPTED]
    assert attempts[-1].upstream_id == vendor.upstream_id(made)


async def test_a_5xx_on_create_is_looked_for_then_resubmitted_or_never_sent_again(
    start_gateway, upstream: FakeServer, vendor: Vendor
) -> None:
    """The fake answers `#5xx` without making a job, but a 5xx after a create proves nothing: the
    outcome is unknown. A kind that can list its jobs looks over its lookup window, finds none, and
    sends the submission again (the only job). Veo cannot be asked: the task stays on its channel,
    showing `upstream_outcome_unknown`, nothing more is sent, and it fails at its deadline."""
    text = prompt("#5xx=1 #retry_after=0.1")
    channel = {"request_timeout_seconds": 1.0, "lookup_window_seconds": 2}
    options = gateway_options(vendor.channel(upstream, **channel), task_deadline_seconds=vendor.deadline())
    async with start_gateway(**options) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, vendor, text)
            if not vendor.traits.can_find_jobs:
                waiting = await _until_state(
                    client, task_id, lambda s: "not sent again" in _last_error(s).get("message", "")
                )
                assert waiting["status"] == "pending", waiting
                assert waiting["detail"]["channel"] == CHANNEL  # it stays on the channel
                assert _last_error(waiting)["code"] == "upstream_outcome_unknown"
            final = await settled(gw, client, task_id)
            attempts = await attempts_of(gw, task_id)
    assert [e.status for e in upstream.fake.journal.entries("rejected_create", text)] in ([503], [500])
    if vendor.traits.can_find_jobs:
        assert final["status"] == "completed", final
        [made] = upstream.fake.journal.creates(text)
        trail = [e.op for e in upstream.fake.journal if e.op in ("rejected_create", "list", "create")]
        assert trail[0] == "rejected_create" and trail[-1] == "create", trail
        assert "list" in trail[1:-1] and trail.count("create") == 1, trail  # looked, then sent again
        assert [a.outcome for a in attempts] == [AttemptOutcome.NOT_FOUND, AttemptOutcome.ACCEPTED]
        assert attempts[-1].upstream_id == vendor.upstream_id(made)
    else:
        assert final["status"] == "failed", final
        assert final["error"]["code"] == "upstream_outcome_unknown", final
        assert upstream.ops(text) == ["rejected_create"]  # never sent again, not even once
        assert [a.outcome for a in attempts] == [AttemptOutcome.UNKNOWN]


async def test_a_job_made_then_answered_with_a_proxys_502_is_paid_for_once(
    start_gateway, upstream: FakeServer, vendor: Vendor
) -> None:
    """`#accept_then_5xx`: the vendor made the job, a proxy lost its answer. Exactly one job either
    way: adopted by a kind that can list its jobs, never created again by Veo (which cannot)."""
    text = prompt("#accept_then_5xx=1")
    final, attempts = await run_one(
        start_gateway,
        upstream,
        vendor,
        text,
        channel={"lookup_window_seconds": 4},
        worker={"task_deadline_seconds": vendor.deadline()},
    )
    [made] = upstream.fake.journal.creates(text)
    assert made.status == 502  # the job exists; the answer was a proxy's page
    if vendor.traits.can_find_jobs:
        assert final["status"] == "completed", final
        assert upstream.fake.journal.count("list") >= 1
        adopted = [(AttemptOutcome.ADOPTED, vendor.upstream_id(made))]
        assert [(a.outcome, a.upstream_id) for a in attempts] == adopted
    else:
        assert final["status"] == "failed", final
        assert final["error"]["code"] == "upstream_outcome_unknown", final
        assert [op for op in upstream.ops(text) if op != "poll"] == ["create"]
        assert [a.outcome for a in attempts] == [AttemptOutcome.UNKNOWN]


async def test_poll_faults_keep_polling_to_completion(
    start_gateway, upstream: FakeServer, vendor: Vendor
) -> None:
    text = prompt("#poll5xx=2 #ready=0.3")
    final, _ = await run_one(start_gateway, upstream, vendor, text)
    assert final["status"] == "completed", final
    assert len(upstream.fake.journal.creates(text)) == 1
    polls = [e.status for e in upstream.fake.journal.entries("poll", text)]
    assert polls[:2] == [500, 500] and polls[-1] == 200, polls


async def test_an_expired_result_link_is_fetched_again_after_a_fresh_poll(
    start_gateway, upstream: FakeServer, vendor: Vendor
) -> None:
    text = prompt("#expired_link=1")
    final, _ = await run_one(start_gateway, upstream, vendor, text)
    assert final["status"] == "completed", final
    assert len(upstream.fake.journal.creates(text)) == 1
    assert files_downloads(upstream, text) == [403, 200]
    # Between the dead link and the one that worked, a poll answered with a fresh link.
    trail = [(e.op, e.dialect, e.status) for e in upstream.fake.journal.entries(prompt=text)]
    refused = trail.index(("download", "files", 403))
    fetched = trail.index(("download", "files", 200))
    assert ("poll", vendor.kind, 200) in trail[refused:fetched], trail


@pytest.mark.parametrize("where", ["create", "job"])
async def test_moderation_fails_with_content_policy_and_is_not_retried(
    start_gateway, upstream: FakeServer, vendor: Vendor, where: str
) -> None:
    """Refused at create (`#moderation`: no job) or the job blocked later (`#moderation=job`): one
    create request either way, and the task fails with `content_policy`."""
    text = prompt("#moderation" if where == "create" else "#moderation=job")
    final, _ = await run_one(start_gateway, upstream, vendor, text)
    assert final["status"] == "failed" and final["error"]["code"] == "content_policy", final
    creates = [op for op in upstream.ops(text) if op in ("create", "rejected_create")]
    assert creates == (["rejected_create"] if where == "create" else ["create"])


async def test_a_cancel_of_a_queued_task_reaches_the_vendor_once_or_is_said_to_be_impossible(
    start_gateway, upstream: FakeServer, vendor: Vendor
) -> None:
    """Ark (`DELETE`) and DashScope (`POST .../cancel`) are asked exactly once to stop the queued job;
    the Gemini API has no cancel: nothing is sent and the task's events say the job runs to its end."""
    text = prompt("#queue=30 #ready=40")
    async with start_gateway(**gateway_options(vendor.channel(upstream))) as gw:
        async with gw.client(await gw.new_key()) as client:
            task_id = await create(client, vendor, text)
            await wait_for_status(client, task_id, ("processing",), timeout=20)
            response = await client.post(f"/v1/videos/{task_id}/cancel")
            assert response.status_code == 200, response.text
            final = await settled(gw, client, task_id)
            messages = [e.message or "" for e in await events_of(gw, task_id)]
    assert final["status"] == "cancelled", final
    [made] = upstream.fake.journal.creates(text)
    stops = [e for e in upstream.fake.journal if e.op in ("delete", "cancel")]
    if vendor.traits.can_cancel:
        assert [(e.op, e.job, e.status) for e in stops] == [(vendor.cancel_op, made.job, 200)]
        # ...and it was stopped while still queued (Ark: cancelled, not deleted; DashScope: PENDING).
        assert stops[0].detail.get("outcome", stops[0].detail.get("phase")) in ("cancelled", "queued")
        assert any(f"asked {CHANNEL} to stop job {vendor.upstream_id(made)}" in m for m in messages), messages
    else:
        assert stops == []  # the Gemini API has no cancel: nothing was sent
        assert any(f"channel {CHANNEL} has no way to stop or delete a job" in m for m in messages), messages


# --------------------------------------------------------------------------------------------------


def _last_error(state: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = state["detail"].get("last_error") or {}
    return error


async def _until_state(
    client: httpx.AsyncClient, task_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        state = await query(client, task_id)
        return state if done(state) else None

    with anyio.fail_after(timeout):
        found: dict[str, Any] = await until(check, interval=0.05)
    return found
