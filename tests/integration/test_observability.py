"""/metrics (parsed with prometheus_client's own parser), request ids, and the ids in worker log lines."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.conftest import gateway_options, serve_fake, upstream_channel
from tests.helpers import wait_for_status
from vidgate.clock import ManualClock
from vidgate.config import Settings, default_channels
from vidgate.ids import parse_task_id
from vidgate.logs import configure_logging

pytestmark = pytest.mark.anyio

Samples = list[tuple[str, dict[str, str], float]]


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


@pytest.fixture
def json_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Production JSON logging at debug level; `read()` gives the lines written to stderr so far."""
    configure_logging(Settings(log_format="json", log_level="debug"))

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]

    try:
        yield read
    finally:
        structlog.reset_defaults()


async def test_metrics_after_a_real_task_on_an_upstream_channel(start_gateway, json_logs) -> None:
    """Request counts by route template, the queue's gauges, step histograms and upstream calls by
    outcome (a 503 injected on the create) once a task has run through the openai adapter."""
    channel_name = f"up-{uuid.uuid4().hex[:8]}"  # this test's own upstream series
    async with serve_fake() as upstream:
        # A 503 to a create is an unknown outcome: looked for over a short window, then sent again.
        channel = upstream_channel("openai", upstream, name=channel_name, lookup_window_seconds=1.5)
        async with start_gateway(**gateway_options(channel)) as gw, gw.client(await gw.new_key()) as client:
            before = await scrape(client)
            body = {"model": "sora-2", "prompt": f"boat {uuid.uuid4().hex[:6]} #5xx=1 #ready=0.2"}
            created = await client.post("/v1/video/create", json=body, headers={"x-request-id": "create-1"})
            assert created.status_code == 200, created.text
            task_id = created.json()["id"]
            assert (await wait_for_status(client, task_id))["status"] == "completed"
            after = await scrape(client)
    ulid = parse_task_id(task_id)
    assert ulid is not None
    assert (
        value(after, "vidgate_http_requests_total", route="/v1/video/create", method="POST", status="200")
        >= 1
    )
    assert value(after, "vidgate_http_requests_total", route="/v1/video/query", status="200") >= 1
    assert value(after, "vidgate_http_request_duration_seconds_count", route="/v1/video/query") >= 1
    assert not [ls for _, ls, _ in after if any(ulid in v for v in ls.values())]  # no ids in labels
    # The queue, from the database (this gateway's own: nothing left pending once the task ended)
    assert {ls["status"] for n, ls, _ in after if n == "vidgate_tasks"} == {"pending", "processing"}
    assert value(after, "vidgate_queue_due") == 0
    assert value(after, "vidgate_queue_oldest_due_age_seconds") == 0
    # The worker's side
    for step in ("submit", "poll", "fetch"):
        assert value(after, "vidgate_step_duration_seconds_count", step=step, outcome="committed") >= 1
    ended = value(after, "vidgate_tasks_ended_total", status="completed")
    assert ended == value(before, "vidgate_tasks_ended_total", status="completed") + 1
    upstream_calls = {
        (ls["operation"], ls["outcome"]): v
        for n, ls, v in after
        if n == "vidgate_upstream_requests_total" and ls["channel"] == channel_name
    }
    assert upstream_calls[("create", "http_5xx")] == 1 and upstream_calls[("create", "ok")] == 1
    assert upstream_calls[("poll", "ok")] >= 1 and upstream_calls[("download", "ok")] == 1
    # Every worker line about the task carries the create's request id, through to the end.
    lines = [line for line in json_logs() if line.get("task_id") == ulid]
    worker_lines = [line for line in lines if "worker" in line]
    assert {line.get("request_id") for line in worker_lines} == {"create-1"}
    assert {line["step"] for line in worker_lines} >= {"submit", "poll", "fetch"}
    assert any(line["event"] == "task status" and line["status"] == "completed" for line in worker_lines)
    assert any(line["event"] == "outbound request" for line in worker_lines)  # the adapter's lines too
    access = {line["request_id"]: line for line in lines if line["event"] == "request"}
    assert access["create-1"]["route"] == "/v1/video/create"  # each query has its own request id
    assert len(access) > 1 and {line["route"] for line in access.values()} == {
        "/v1/video/create",
        "/v1/video/query",
    }


async def test_queue_gauges_count_pending_and_due_tasks(start_gateway) -> None:
    clock = ManualClock()
    async with start_gateway(run_worker=False, clock=clock) as gw, gw.client(await gw.new_key()) as client:
        for _ in range(3):
            assert (await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "x"})).is_success
        clock.advance(42)
        samples = await scrape(client)
    assert value(samples, "vidgate_tasks", status="pending") == 3
    assert value(samples, "vidgate_tasks", status="processing") == 0
    assert value(samples, "vidgate_queue_due") == 3
    assert value(samples, "vidgate_queue_oldest_due_age_seconds") == pytest.approx(42, abs=0.01)


async def test_metrics_token_guards_the_route_when_set(start_gateway) -> None:
    async with start_gateway(run_worker=False, metrics_token="m-token") as gw, gw.client(None) as anon:
        assert (await anon.get("/metrics")).status_code == 401
        assert (await anon.get("/metrics", headers={"authorization": "Bearer nope"})).status_code == 401
        assert await scrape(anon, authorization="Bearer m-token")


async def test_request_ids_are_echoed_when_plain_and_made_otherwise(gateway) -> None:
    async with gateway.client(None) as anon:
        given = (await anon.get("/healthz", headers={"x-request-id": "abc.DEF_1-2"})).headers
        assert given["x-request-id"] == "abc.DEF_1-2"
        for bad in ("a" * 65, "has space", "semi;colon", ""):
            made = (await anon.get("/healthz", headers={"x-request-id": bad})).headers["x-request-id"]
            assert made != bad and parse_task_id(made) == made  # a fresh ULID
        first = (await anon.get("/nowhere")).headers["x-request-id"]
        second = (await anon.get("/nowhere")).headers["x-request-id"]
        assert first != second and parse_task_id(first) == first


async def test_access_line_names_the_route_template_and_the_task(gateway, client, json_logs) -> None:
    created = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "x"})
    ulid = parse_task_id(created.json()["id"])
    await client.get(f"/v1/videos/video_{ulid}")
    await client.get("/v1/no/such/route?sig=SECRET")
    lines = [line for line in json_logs() if line["event"] == "request"]
    by_route = {line["route"]: line for line in lines}
    assert by_route["/v1/video/create"]["task_id"] == ulid
    assert by_route["/v1/videos/{video_id}"]["task_id"] == ulid
    assert by_route["/v1/videos/{video_id}"]["request_id"]
    assert by_route["unmatched"]["path"] == "/v1/no/such/route" and by_route["unmatched"]["status"] == 404
    assert "SECRET" not in json.dumps(lines)


async def test_a_standalone_worker_serves_its_own_metrics(make_settings) -> None:
    from vidgate.runtime import open_runtime
    from vidgate.worker.metrics_server import serve_worker_metrics

    settings = make_settings(metrics_token="w-token")
    async with open_runtime(settings) as runtime, anyio.create_task_group() as tg:
        port = await tg.start(serve_worker_metrics, runtime, 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as plain:
            samples = await scrape(plain, authorization="Bearer w-token")
            assert (await plain.get("/metrics")).status_code == 401
            assert (await plain.get("/other", headers={"authorization": "Bearer w-token"})).status_code == 404
            assert (await plain.post("/metrics")).status_code == 405
        tg.cancel_scope.cancel()
    assert value(samples, "vidgate_tasks", status="pending") == 0
    assert any(name == "vidgate_queue_due" for name, _, _ in samples)


async def test_built_in_renders_are_timed(start_gateway) -> None:
    channel = default_channels()[0].model_copy(update={"options": {"fps": 1}})  # 10 frames: quick
    async with start_gateway(channels=[channel]) as gw, gw.client(await gw.new_key()) as client:
        before = value(await scrape(client), "vidgate_render_seconds_count", engine="animate")
        created = await client.post("/v1/video/create", json={"model": "sora-2", "prompt": "a card"})
        assert (await wait_for_status(client, created.json()["id"]))["status"] == "completed"
        after = await scrape(client)
    assert value(after, "vidgate_render_seconds_count", engine="animate") == before + 1
    assert value(after, "vidgate_render_seconds_sum", engine="animate") > 0
