"""Ids, routing order, transitions, backoff, link signing and byte ranges."""

from __future__ import annotations

import random

import pytest

from vidgate import signing
from vidgate.api.ranges import RangeNotSatisfiable, parse_range
from vidgate.domain.lifecycle import IllegalTransition, check_transition
from vidgate.domain.routing import Catalog, ChannelProfile, RouteRequest
from vidgate.domain.tasks import TaskStatus, WatermarkMode
from vidgate.ids import new_ulid, openai_id, parse_task_id, unified_id
from vidgate.worker.outcomes import backoff_seconds

ULID = "01k6x15vhrff09dkkqjrzwhm60"


@pytest.mark.parametrize(
    "raw",
    [
        f"sora-2:task_{ULID}",
        f"sora-2-pro:task_{ULID}",
        f"task_{ULID}",
        f"video_{ULID}",
        ULID,
        ULID.upper(),
        f" {ULID} ",
    ],
)
def test_every_id_form_resolves_to_the_ulid(raw: str) -> None:
    assert parse_task_id(raw) == ULID


@pytest.mark.parametrize(
    "raw", ["", "task_", "sora-2:task_123", "video_" + "u" * 26, "8" + ULID[1:], "../../etc"]
)
def test_non_ids_are_rejected(raw: str) -> None:
    assert parse_task_id(raw) is None


def test_new_ids_are_lowercase_sortable_and_round_trip() -> None:
    a, b = new_ulid(), new_ulid()
    assert a == a.lower() and len(a) == 26 and a <= b
    assert parse_task_id(unified_id("sora-2", a)) == a
    assert parse_task_id(openai_id(a)) == a


def _channel(name: str, watermark_free: str, priority: int = 0) -> ChannelProfile:
    return ChannelProfile(
        name, "x", frozenset({"m"}), frozenset({10}), frozenset({"720x1280"}), 4, watermark_free, priority
    )


def test_priority_first_then_always_optional_never() -> None:
    catalog = Catalog(
        [
            _channel("never", "never"),
            _channel("opt2", "optional", 2),
            _channel("opt1", "optional", 1),
            _channel("always", "always"),
        ]
    )
    route = RouteRequest("m", 10, "720x1280", 0, WatermarkMode.PREFER_CLEAN)
    assert [c.name for c in catalog.candidates(route)] == ["always", "never", "opt1", "opt2"]


def test_require_clean_never_routes_to_marked_only_channels() -> None:
    catalog = Catalog([_channel("never", "never"), _channel("opt", "optional")])
    route = RouteRequest("m", 10, "720x1280", 0, WatermarkMode.REQUIRE_CLEAN)
    assert [c.name for c in catalog.candidates(route)] == ["opt"]


def test_transitions_table() -> None:
    check_transition(TaskStatus.PENDING, TaskStatus.PROCESSING)
    check_transition(TaskStatus.PROCESSING, TaskStatus.COMPLETED)
    check_transition(TaskStatus.COMPLETED, TaskStatus.COMPLETED)
    for terminal in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        with pytest.raises(IllegalTransition):
            check_transition(terminal, TaskStatus.PROCESSING)
    with pytest.raises(IllegalTransition):
        check_transition(TaskStatus.PENDING, TaskStatus.COMPLETED)


def test_backoff_grows_is_jittered_capped_and_honours_retry_after() -> None:
    rng = random.Random(7)
    delays = [backoff_seconds(n, base=1, cap=60, retry_after=None, rng=rng) for n in range(10)]
    for n, d in enumerate(delays):
        ceiling = min(60, 2**n)
        assert ceiling / 2 <= d <= ceiling
    assert len({round(d, 6) for d in delays[6:]}) > 1, "jitter spreads capped retries"
    assert backoff_seconds(0, base=1, cap=60, retry_after=30, rng=rng) == 30


def test_signatures_verify_and_refuse_tampering_and_expiry() -> None:
    key = b"k"
    sig = signing.sign(key, ULID, "video", 2000)
    assert signing.verify(key, ULID, "video", 2000, sig, now_s=1999)
    assert not signing.verify(key, ULID, "video", 2000, sig, now_s=2000)  # expired
    assert not signing.verify(key, ULID, "thumbnail", 2000, sig, now_s=1)  # other variant
    assert not signing.verify(key, ULID, "video", 2001, sig, now_s=1)  # stretched expiry
    assert not signing.verify(b"other", ULID, "video", 2000, sig, now_s=1)
    assert not signing.verify(key, ULID, "video", 2000, sig[:-1] + ("A" if sig[-1] != "A" else "B"), now_s=1)


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=0-1,5-6", None),  # multi-range: whole file
        ("items=0-1", None),  # unknown unit: ignored
    ],
)
def test_parse_range(header, expected) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-4", "bytes=-0"])
def test_unsatisfiable_ranges(header) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 1000)
