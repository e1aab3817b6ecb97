"""Numbers `int()` refuses: Unicode digits ("²".isdigit() is true) and numbers of thousands of digits."""

from __future__ import annotations

import pytest

from vidgate import signing
from vidgate.api.ranges import RangeNotSatisfiable, parse_range

HUGE = "9" * 5000


@pytest.mark.parametrize("text", ["²", "١٢", "", "-1", " 1", "1.0", HUGE, "1" * 13])
def test_unix_seconds_are_ascii_digits_of_a_sane_length(text: str) -> None:
    assert signing.parse_unix_seconds(text) is None


def test_unix_seconds_parse() -> None:
    assert signing.parse_unix_seconds("1759763427") == 1759763427


@pytest.mark.parametrize("t", ["²", HUGE])
def test_a_webhook_timestamp_int_refuses_is_not_verified(t: str) -> None:
    header = f"t={t},v1=00"
    assert signing.verify_webhook(b"k", header, b"{}", now_s=1_700_000_000) is False


def test_a_webhook_signature_still_verifies() -> None:
    header = signing.webhook_signature(b"k", 1_700_000_000, b"{}")
    assert signing.verify_webhook(b"k", header, b"{}", now_s=1_700_000_010)


@pytest.mark.parametrize(
    "header, expected",
    [
        (f"bytes=0-{HUGE}", (0, 99)),  # a last position past the end is clipped
        (f"bytes=-{HUGE}", (0, 99)),  # a suffix longer than the file is the whole file
        (f"bytes={'0' * 5000}5-9", (5, 9)),  # leading zeros are not size
        ("bytes=²-", None),  # not RFC 9110 digits: the header is ignored
        ("bytes=٣-5", None),
    ],
)
def test_range_numbers_of_any_length(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


def test_a_range_starting_past_any_file_is_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(f"bytes={HUGE}-", 100)
