"""Reading upstream statuses, progress, envelopes and result URLs tolerantly."""

from __future__ import annotations

import pytest

from vidgate.providers.base import UpstreamState
from vidgate.providers.upstream_status import first_url, progress_percent, unwrap, upstream_state

S = UpstreamState


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("queued", S.QUEUED), ("PENDING", S.QUEUED), ("not_start", S.QUEUED), ("Submitted", S.QUEUED),
        ("in_progress", S.RUNNING), ("IN_PROGRESS", S.RUNNING), ("running", S.RUNNING),
        ("video_generating", S.RUNNING), ("processing", S.RUNNING), ("in progress", S.RUNNING),
        ("completed", S.SUCCEEDED), ("succeeded", S.SUCCEEDED), ("SUCCESS", S.SUCCEEDED),
        ("failed", S.FAILED), ("FAILURE", S.FAILED), ("error", S.FAILED),
        ("video_generation_failed", S.FAILED),
    ],
)  # fmt: skip
def test_status_synonyms_in_any_case(word: str, state: UpstreamState) -> None:
    assert upstream_state(word) == (state, False)


def test_cancelled_and_unknown_words() -> None:
    assert upstream_state("Cancelled") == (S.FAILED, True)
    assert upstream_state("canceled") == (S.FAILED, True)
    assert upstream_state("warming_up") == (None, False)
    assert upstream_state(None) == (None, False)
    assert upstream_state(True) == (None, False)


@pytest.mark.parametrize(
    ("raw", "percent"),
    [(42, 42), ("42", 42), ("42%", 42), (42.6, 43), (0.5, 50), ("0.93", 93), (1, 1), (150, 100), (-3, 0),
     (None, None), ("soon", None), (True, None), (float("nan"), None)],
)  # fmt: skip
def test_progress_in_every_shape(raw: object, percent: int | None) -> None:
    assert progress_percent(raw) == percent


def test_envelopes_and_http_200_errors() -> None:
    assert unwrap({"code": 0, "msg": "success", "data": {"id": "t1"}}) == ({"id": "t1"}, None)
    assert unwrap({"code": 200, "data": {"id": "t1"}}) == ({"id": "t1"}, None)
    assert unwrap({"code": 500, "msg": "busy", "data": None}) == (None, 500)
    assert unwrap({"id": "t1", "status": "pending", "code": "x", "data": 1}) == (
        {"id": "t1", "status": "pending", "code": "x", "data": 1}, None)  # fmt: skip
    payload, _ = unwrap({"code": 0, "data": {"resultJson": '{"resultUrls": ["https://cdn/x.mp4"]}'}})
    assert payload["resultJson"] == {"resultUrls": ["https://cdn/x.mp4"]}


def test_result_urls_as_strings_lists_or_objects() -> None:
    assert first_url("https://a/x.mp4") == "https://a/x.mp4"
    assert first_url(None, ["https://b/y.mp4"]) == "https://b/y.mp4"
    assert first_url([{"url": "https://c/z.mp4"}]) == "https://c/z.mp4"
    assert first_url("ftp://nope", "", [None]) is None
