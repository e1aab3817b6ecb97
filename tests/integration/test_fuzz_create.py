"""Property-based fuzzing of POST /v1/video/create: whatever the body, never a 5xx, and every 4xx is
the OpenAI envelope; every 200 is exactly the three-key answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import create_key
from tests.helpers import scripted_channel
from vidgate.api.app import create_app
from vidgate.config import Settings
from vidgate.testing.resolver import PUBLIC_TEST_HOSTS, StaticResolver
from vidgate.testing.server import bind_loopback, serving

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

plausible = {
    "model": st.sampled_from(["sora-2", "sora-2-pro", "veo3", "", "SORA-2"]) | json_values,
    "prompt": st.text(max_size=60) | json_values,
    "images": st.lists(
        st.sampled_from(
            [
                "https://example.com/a.png",
                "http://127.0.0.1/x",
                "data:image/png;base64,iVBORw0KGgo=",
                "ftp://x",
                "https://no-such-host.invalid/a.png",
                "http://[::1]/",
                "https://user:pw@example.com/a.png",
                "https://example.com:8443/a.png",
            ]
        )
        | st.text(max_size=20),
        max_size=6,
    )
    | json_values,
    "orientation": st.sampled_from(["portrait", "landscape", "PORTRAIT", "square"]) | json_values,
    "size": st.sampled_from(["small", "large", "1280x720", "720x1280", "1x1", "huge"]) | json_values,
    "duration": st.sampled_from([10, 15, 25, "10", "15", "0", -1, 10.0, 10.5, "1e3"]) | json_values,
    "watermark": st.sampled_from([True, False, "true", "false", "False", "yes", 0]) | json_values,
    "private": st.booleans() | json_values,
    "style": json_values,
    "storyboard": json_values,
    "character_url": json_values,
    "character_timestamps": st.sampled_from(["1,3", "3,1", "a,b", ""]) | json_values,
    "callback_url": json_values,
}
bodies = st.fixed_dictionaries({}, optional=plausible) | json_values


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real gateway on loopback (no worker: only the create route is under test), and a key."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    sock = bind_loopback()
    config = Settings(
        data_dir=root / "data",
        port=sock.getsockname()[1],
        secret_key="fuzz",
        channels=[scripted_channel(root / "upstream")],
    )
    app = create_app(config, run_worker=False, resolver=StaticResolver(PUBLIC_TEST_HOSTS))
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(serving(app, sock)) as base_url:
        yield base_url, portal.call(create_key, config)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_create_never_answers_5xx(fuzz_target: tuple[str, str], body: object) -> None:
    base_url, key = fuzz_target
    r = httpx.post(
        f"{base_url}/v1/video/create",
        content=json.dumps(body),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert r.status_code < 500, (body, r.text)
    payload = r.json()
    if r.status_code == 200:
        assert list(payload) == ["id", "status", "status_update_time"]
        assert payload["status"] == "pending"
    else:
        assert set(payload["error"]) == {"message", "type", "param", "code"}, payload
        assert payload["error"]["message"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_clean_400(fuzz_target: tuple[str, str], raw: bytes) -> None:
    base_url, key = fuzz_target
    r = httpx.post(
        f"{base_url}/v1/video/create",
        content=raw,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert r.status_code in (200, 400), (raw, r.text)
