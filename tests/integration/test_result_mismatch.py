"""Issue 21: a result other than the one asked for (an 80x44 clip for a 1280x720 task) is no longer
accepted silently. What a copied result really is shows in `detail.video`; a size that differs, or a
duration beyond a small tolerance, adds a sentence to `detail.warnings`; on a channel with
`strict_result` the task fails with `result_mismatch` instead (and its job's copy upstream is deleted).

The scripted channel's clips are the asked size divided by its `clip_scale` (20 here, 1 for an exact one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import scripted_channel, wait_for_status

pytestmark = pytest.mark.anyio


def journal(state_dir: Path, task_id: str) -> list[str]:
    lines = (state_dir / "journal.jsonl").read_text().splitlines()
    return [e["op"] for line in lines if (e := json.loads(line))["task"] == task_id.split("task_")[-1]]


async def test_a_result_of_another_size_is_recorded_warned_about_or_refused(start_gateway, tmp_path) -> None:
    lenient = scripted_channel(tmp_path / "lenient", name="lenient")
    lenient = lenient.model_copy(update={"models": ["sora-2"]})
    strict = scripted_channel(tmp_path / "strict", name="strict")
    strict = strict.model_copy(update={"models": ["sora-2-pro"], "strict_result": True})
    exact = scripted_channel(tmp_path / "exact", name="exact", clip_scale=1)
    exact = exact.model_copy(update={"models": ["exact"], "strict_result": True})
    async with start_gateway(run_worker=True, channels=[lenient, strict, exact]) as gw:
        async with gw.client(await gw.new_key()) as client:
            ended: dict[str, dict[str, Any]] = {}
            for model, size in (("sora-2", "1280x720"), ("sora-2-pro", "1280x720"), ("exact", "720x1280")):
                body = {"model": model, "prompt": f"a kite ({model})", "seconds": "4", "size": size}
                made = await client.post("/v1/videos", json=body)
                assert made.status_code == 200, made.text
                query = await wait_for_status(client, made.json()["id"], timeout=60)
                ended[model] = query

    warned = ended["sora-2"]
    assert warned["status"] == "completed", warned["error"]
    assert (warned["width"], warned["height"], warned["duration"]) == (1280, 720, 4)  # what was asked
    assert warned["detail"]["video"] == {"width": 64, "height": 36, "seconds": 4.0}  # what came
    assert warned["detail"]["warnings"] == ["the channel's video is 64x36, not the 1280x720 asked for"]
    assert warned["video_url"] is not None

    refused = ended["sora-2-pro"]
    assert refused["status"] == "failed"
    assert refused["error"]["code"] == "result_mismatch"
    assert refused["error"]["message"] == (
        "The channel's video is 64x36, not the 1280x720 asked for; "
        "the channel's strict_result setting refuses such a result."
    )
    assert refused["detail"]["video"] == {"width": 64, "height": 36, "seconds": 4.0}
    assert refused["video_url"] is None and refused["thumbnail_url"] is None
    assert journal(tmp_path / "strict", refused["id"])[-1] == "cancel"  # the job's copy is deleted upstream

    same = ended["exact"]
    assert same["status"] == "completed", same["error"]
    assert same["detail"]["video"] == {"width": 720, "height": 1280, "seconds": 4.0}
    assert "warnings" not in same["detail"]
