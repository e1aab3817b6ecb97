"""`vidgate keys ... --json` (local, on the database) prints a key exactly as the admin API does, so that
`vidgate keys` and `vidgate admin keys` give scripts one shape."""

from __future__ import annotations

import pytest

from vidgate.api.admin import key_view
from vidgate.cli.keys import key_object
from vidgate.store.keys import ApiKey

PLAIN = ApiKey(id="01KEY", name="ops", key_hint="vg-abcde…", is_admin=True, created_at=1_764_000_000_123,
               revoked_at=None)  # fmt: skip
ACCOUNT = ApiKey(id="01SHOP", name="shop", key_hint="vg-fghij…", is_admin=False,
                 created_at=1_764_000_000_999, revoked_at=1_764_000_100_500, requests_per_minute=0,
                 creates_per_minute=30, max_active_tasks=4, balance=2_500_000, held=400_000,
                 allowed_models=("sora-2", "veo-3.1"))  # fmt: skip


@pytest.mark.parametrize("key", [PLAIN, ACCOUNT])
def test_a_local_key_is_the_api_object(key: ApiKey) -> None:
    assert key_object(key) == key_view(key)
