"""Prices and credits: exact micro-credit amounts from what operators write, the price of a request on a
channel and across channels (what a create holds), and which ended tasks the refund policy charges."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vidgate.channel_config import ChannelSettings
from vidgate.domain.routing import Catalog, RouteRequest
from vidgate.domain.tasks import TaskStatus, WatermarkMode
from vidgate.money import format_credits, parse_credits
from vidgate.providers.registry import profile_for
from vidgate.store.ledger import RefundPolicy


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("10", 10_000_000),
        ("0.25", 250_000),
        (0.1, 100_000),
        (2, 2_000_000),
        ("1_000", 1_000_000_000),
        ("0.000001", 1),
        ("-1.5", -1_500_000),
    ],
)
def test_credits_are_read_exactly(text: Any, micros: int) -> None:
    assert parse_credits(text) == micros
    assert parse_credits(format_credits(micros)) == micros


@pytest.mark.parametrize("text", ["", "abc", "0.0000001", "nan", "inf", "1e30", True])
def test_bad_credit_amounts_are_refused_with_their_name(text: Any) -> None:
    with pytest.raises(ValueError, match="amount"):
        parse_credits(text)


def test_credits_are_shown_without_trailing_zeros() -> None:
    assert [format_credits(v) for v in (0, 2_500_000, 1, -300_000, None)] == [
        "0", "2.5", "0.000001", "-0.3", "unlimited"
    ]  # fmt: skip


def relay(pricing: dict[str, Any], **extra: Any) -> ChannelSettings:
    return ChannelSettings(name=extra.pop("name", "relay"), kind="animate", models=["sora-2", "sora-2-pro"],
                           pricing=pricing, **extra)  # fmt: skip


def request(model: str = "sora-2", size: str = "720x1280", seconds: int = 8) -> RouteRequest:
    return RouteRequest(model, seconds, size, 0, WatermarkMode.PREFER_CLEAN)


def test_a_price_is_per_clip_plus_per_second_with_sizes_priced_apart() -> None:
    channel = profile_for(
        relay(
            {
                "sora-2": {"per_clip": "0.1", "per_second": "0.05", "sizes": {"1280x720": {"per_second": 1}}},
                "*": {"per_clip": 3},
            }
        )
    )
    assert channel.price(request()) == 500_000
    assert channel.price(request(size="1280x720")) == 8_000_000  # the size's price replaces both parts
    assert channel.price(request("sora-2-pro")) == 3_000_000  # "*": every other model
    assert profile_for(relay({})).price(request()) == 0  # no pricing: free


@pytest.mark.parametrize(
    ("pricing", "message"),
    [
        ({"veo-3": {"per_clip": 1}}, "does not serve"),
        ({"sora-2": {"per_clip": -1}}, "greater than or equal to 0"),
        ({"sora-2": {"per_clip": "0.0000001"}}, "more than six decimals"),
        ({"sora-2": {"per_minute": 1}}, "Extra inputs"),
        ({"sora-2": {"sizes": {"640x480": {"per_clip": 1}}}}, "sizes it does not have"),
    ],
)
def test_bad_pricing_is_an_error_at_start(pricing: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        relay(pricing)


def test_a_create_holds_the_dearest_channel_that_could_take_it() -> None:
    catalog = Catalog(
        [
            profile_for(relay({"sora-2": {"per_clip": 1}}, name="cheap")),
            profile_for(relay({"sora-2": {"per_clip": 4}}, name="dear", sizes=["720x1280"])),
            profile_for(relay({"sora-2": {"per_clip": 9}}, name="off", enabled=False)),
        ]
    )
    assert catalog.max_price(request()) == 4_000_000
    assert catalog.max_price(request(size="1280x720")) == 1_000_000  # only "cheap" has that size
    assert catalog.max_price(request("veo-3")) == 0


@pytest.mark.parametrize(
    ("status", "code", "refund_moderation", "charged"),
    [
        (TaskStatus.COMPLETED, None, True, 300),
        (TaskStatus.CANCELLED, "cancelled", False, 0),
        (TaskStatus.FAILED, "timeout", False, 0),
        (TaskStatus.FAILED, "content_policy", True, 0),
        (TaskStatus.FAILED, "content_policy", False, 300),
        (TaskStatus.FAILED, "watermark_removal_failed", True, 300),
    ],
)
def test_the_refund_policy(
    status: TaskStatus, code: str | None, refund_moderation: bool, charged: int
) -> None:
    policy = RefundPolicy.from_settings(
        refund_moderation=refund_moderation, charged_failures=["watermark_removal_failed"]
    )
    expected = (
        charged if status is TaskStatus.COMPLETED or code != "content_policy" or not refund_moderation else 0
    )
    assert policy.charge(hold=500, charge=300, status=status, error_code=code) == expected
    # Never more than the hold; no channel price known: the hold.
    assert policy.charge(hold=500, charge=900, status=TaskStatus.COMPLETED, error_code=None) == 500
    assert policy.charge(hold=500, charge=None, status=TaskStatus.COMPLETED, error_code=None) == 500
