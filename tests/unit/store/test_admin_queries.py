"""`ulid_floor`: the smallest ULID of a millisecond, which bounds the channel status's scan of recent
tasks by primary key; too high a floor would hide tasks that did end in the window."""

from __future__ import annotations

from ulid import ULID

from vidgate.store.admin_queries import ulid_floor


def test_the_floor_sorts_before_every_ulid_of_its_millisecond_and_after_every_earlier_one() -> None:
    for ms in (0, 1, 1_760_000_000_000, 1_764_590_400_123, 2**48 - 2):
        floor = ulid_floor(ms)
        assert len(floor) == 26 and floor == floor.lower()
        same = str(ULID.from_timestamp(ms / 1000)).lower()
        assert same[:10] == floor[:10] and floor <= same
        if ms:
            earlier = str(ULID.from_timestamp((ms - 1) / 1000)).lower()
            assert earlier < floor
    assert ulid_floor(-5) == "0" * 26  # clamped: before the epoch is the epoch
