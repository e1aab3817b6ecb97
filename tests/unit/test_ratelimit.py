"""Rate-limit settings and the small rules of api/ratelimit.py (the behaviour is tested over HTTP in
tests/integration/test_rate_limits*.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.helpers import among, modules_after
from vidgate.config import Settings
from vidgate.ratelimit import _duration, _limits_uri, active_task_cap, effective_limit
from vidgate.store.keys import ApiKey


def key(**limits: int | None) -> ApiKey:
    return ApiKey(id="k", name="n", key_hint="vg-…", is_admin=False, created_at=0, revoked_at=None, **limits)


def test_a_keys_own_limit_wins_and_zero_means_unlimited() -> None:
    assert effective_limit(None, None) is None
    assert effective_limit(None, 60) == 60
    assert effective_limit(10, 60) == 10
    assert effective_limit(0, 60) is None
    settings = Settings(max_active_tasks=3)
    assert active_task_cap(settings, key()) == 3
    assert active_task_cap(settings, key(max_active_tasks=0)) is None
    assert active_task_cap(Settings(), key(max_active_tasks=7)) == 7


@pytest.mark.parametrize("field", ["requests_per_minute", "creates_per_minute", "max_active_tasks"])
def test_limits_below_one_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: 0})


def test_a_redis_url_needs_a_redis_scheme_and_is_never_echoed() -> None:
    with pytest.raises(ValidationError, match="redis://, rediss:// or unix://") as raised:
        Settings(redis_url="http://user:hunter2@cache:6379")
    assert "hunter2" not in str(raised.value)
    settings = Settings(redis_url="redis://:hunter2@cache:6379/0")
    assert "hunter2" not in repr(settings)


def test_limits_uris_and_reset_durations() -> None:
    assert _limits_uri("redis://h:6379/0") == "async+redis://h:6379/0"
    assert _limits_uri("rediss://h") == "async+rediss://h"
    assert _limits_uri("unix:///run/redis.sock?db=1") == "async+redis+unix:///run/redis.sock?db=1"
    assert _duration(0.0001) == "1ms"
    assert _duration(0.85) == "850ms"
    assert _duration(2.1) == "3s"
    assert _duration(65) == "1m5s"


def test_a_gateway_without_redis_never_imports_redis() -> None:
    """Without `redis_url` the limits are kept in memory, and every process start would pay for importing
    redis (about a tenth of a second) for nothing."""
    modules = modules_after(
        "import anyio\n"
        "from vidgate.api.app import create_app\n"
        "from vidgate.config import Settings\n"
        "from vidgate.ratelimit import build_rate_limiter\n"
        "async def main():\n"
        "    await build_rate_limiter(Settings()).aclose()\n"
        "anyio.run(main)\n"
    )
    assert "vidgate.api.app" in modules and "vidgate.ratelimit" in modules
    assert among(modules, ("redis",)) == []
