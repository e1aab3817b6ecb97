"""The one error mapping every adapter uses, and the one place upstream clients are built."""

from __future__ import annotations

import email.utils
import socket
import time

import anyio
import httpx
import pytest

from vidgate.channel_config import ChannelSettings
from vidgate.providers.base import ProviderError, ResultExpired, UpstreamOutcomeUnknown
from vidgate.providers.upstream_http import (
    UpstreamHttp,
    download_video,
    mapped_transport_errors,
    parse_retry_after,
    raise_for_status,
    unreachable,
)

pytestmark = pytest.mark.anyio


def channel(**kw) -> ChannelSettings:
    return ChannelSettings(
        name="up",
        kind="openai",
        base_url="http://10.1.2.3:8000/v1",
        api_key="sk-test",
        models=["sora-2"],
        **kw,
    )


def response(status: int, body=None, headers=None) -> httpx.Response:
    return httpx.Response(
        status, json=body, headers=headers, request=httpx.Request("POST", "http://x/v1/videos")
    )


async def test_the_client_carries_credentials_headers_and_our_user_agent_and_ignores_env_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    http = UpstreamHttp(httpx.MockTransport(handler))
    async with http.client_for(channel(headers={"X-Org": "o-1"})) as client:
        assert not client.trust_env
        await client.get("videos/abc")
    [sent] = seen
    assert str(sent.url) == "http://10.1.2.3:8000/v1/videos/abc"  # a private address is fine for a channel
    assert sent.headers["authorization"] == "Bearer sk-test" and sent.headers["x-org"] == "o-1"
    assert sent.headers["user-agent"].startswith("vidgate/")


@pytest.mark.parametrize(
    ("exc", "may_create", "expected"),
    [
        (httpx.ConnectError("refused"), True, "upstream_unreachable"),
        (httpx.ConnectTimeout("slow"), True, "upstream_unreachable"),
        (httpx.PoolTimeout("busy"), True, "upstream_unreachable"),
        (httpx.ReadTimeout("no answer"), False, "upstream_timeout"),
        (httpx.ReadTimeout("no answer"), True, UpstreamOutcomeUnknown),
        (httpx.RemoteProtocolError("peer closed"), True, UpstreamOutcomeUnknown),
        (httpx.WriteError("reset"), True, UpstreamOutcomeUnknown),
        (httpx.ReadError("reset"), False, "upstream_connection_failed"),
    ],
)
def test_transport_errors(exc: Exception, may_create: bool, expected: object) -> None:
    with pytest.raises(ProviderError) as caught, mapped_transport_errors("create", may_create=may_create):
        raise exc
    if isinstance(expected, str):
        assert caught.value.code == expected and caught.value.retryable
        assert not isinstance(caught.value, UpstreamOutcomeUnknown)
    else:
        assert isinstance(caught.value, UpstreamOutcomeUnknown)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_channel_is_named_by_host_and_port_never_by_path_or_query() -> None:
    """Issue 21: "could not connect to the channel" left the operator guessing which address failed."""
    port = closed_port()
    settings = channel().model_copy(update={"base_url": f"http://127.0.0.1:{port}/v1"})
    async with UpstreamHttp().client_for(settings) as client:
        for what, may_create in (("create", True), ("poll", False)):
            with pytest.raises(ProviderError) as caught, mapped_transport_errors(what, may_create=may_create):
                await client.get("videos/job-1", params={"token": "sig-secret"})
            assert caught.value.code == "upstream_unreachable" and caught.value.retryable
            assert caught.value.message == f"{what}: could not connect to the channel at 127.0.0.1:{port}"
            assert not isinstance(caught.value, UpstreamOutcomeUnknown)  # nothing reached it


@pytest.mark.parametrize(
    ("url", "exc", "expected"),
    [
        (
            "https://api.example.com/v1/videos?key=k1",
            httpx.ConnectTimeout,
            "connect to the channel at api.example.com:443",
        ),
        ("http://[fd00::5]:8000/v1/videos", httpx.ConnectError, "connect to the channel at [fd00::5]:8000"),
        ("http://10.1.2.3/v1/videos", httpx.PoolTimeout, "no free connection to the channel at 10.1.2.3:80"),
        ("http://10.1.2.3:9/v1/videos?sig=s1", httpx.ReadTimeout, "the channel at 10.1.2.3:9 did not answer"),
        (
            "http://10.1.2.3:9/v1/videos",
            httpx.ReadError,
            "the connection to the channel at 10.1.2.3:9 failed",
        ),
    ],
)
def test_every_transport_error_names_the_host_and_port(url: str, exc: type, expected: str) -> None:
    request = httpx.Request("GET", url)
    with pytest.raises(ProviderError) as caught, mapped_transport_errors("poll"):
        raise exc("boom", request=request)
    assert expected in caught.value.message
    assert "key=" not in caught.value.message and "sig=" not in caught.value.message
    assert "/v1" not in caught.value.message
    with pytest.raises(UpstreamOutcomeUnknown) as unknown, mapped_transport_errors("create", may_create=True):
        raise httpx.ReadTimeout("slow", request=request)
    assert "after the request was sent" in unknown.value.message and "?" not in unknown.value.message


def test_a_transport_error_without_a_request_still_maps() -> None:
    with pytest.raises(ProviderError) as caught, mapped_transport_errors("poll"):
        raise httpx.ConnectError("refused")  # raised outside a client: no request attached
    assert caught.value.message == "poll: could not connect to the channel"
    assert unreachable(httpx.ConnectError("refused")).verdict == "unreachable: ConnectError"
    at = unreachable(httpx.ConnectError("refused", request=httpx.Request("GET", "http://h.example:81/v1/x")))
    assert at.verdict == "unreachable at h.example:81: ConnectError"


def test_statuses_map_to_retryable_final_or_unknown() -> None:
    raise_for_status(response(201, {}), "create")
    cases = {
        (429, False): ("upstream_rate_limited", True),
        (429, True): ("upstream_rate_limited", True),  # a documented refusal: no job was made
        (500, False): ("upstream_unavailable", True),
        (504, False): ("upstream_unavailable", True),
        (401, True): ("upstream_auth_failed", True),
        (403, False): ("upstream_auth_failed", True),
    }
    for (status, may_create), (code, retryable) in cases.items():
        with pytest.raises(ProviderError) as caught:
            raise_for_status(
                response(status, {"error": {"message": "busy"}}), "create", may_create=may_create
            )
        assert not isinstance(caught.value, UpstreamOutcomeUnknown), status
        assert (caught.value.code, caught.value.retryable) == (code, retryable), status


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 410, 418, 520, 521, 522, 523, 524, 599])
def test_on_a_create_anything_but_a_proven_refusal_is_an_unknown_outcome(status: int) -> None:
    """A proxy in front of the upstream answers 502/520-524 after the origin made the job; a 503 may come
    after it too. Only the dialect's documented refusals prove that no job exists."""
    with pytest.raises(UpstreamOutcomeUnknown):
        raise_for_status(response(status, {"error": {"message": "busy"}}), "create", may_create=True)
    with pytest.raises(UpstreamOutcomeUnknown):
        raise_for_status(httpx.Response(status, text="<html>cloudflare</html>"), "create", may_create=True)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429])
def test_on_a_create_a_proven_refusal_is_never_taken_for_an_unknown_outcome(status: int) -> None:
    with pytest.raises(ProviderError) as caught:
        raise_for_status(response(status, {"error": {"message": "no"}}), "create", may_create=True)
    assert not isinstance(caught.value, UpstreamOutcomeUnknown)


def test_a_4xx_is_final_with_the_upstreams_code_and_message_and_moderation_is_content_policy() -> None:
    with pytest.raises(ProviderError) as caught:
        raise_for_status(
            response(400, {"error": {"code": "invalid_value", "message": "size is bad"}}), "create"
        )
    assert caught.value.code == "invalid_value" and not caught.value.retryable
    assert "size is bad" in caught.value.message
    for body in (
        {"error": {"code": "moderation_blocked", "message": "blocked"}},
        {"code": 400, "msg": "Your prompt violates our content policy"},
        {"error": "sentinel_block"},
    ):
        with pytest.raises(ProviderError) as caught:
            raise_for_status(response(400, body), "create")
        assert caught.value.code == "content_policy" and not caught.value.retryable, body


def test_retry_after_in_seconds_ms_or_a_date_capped_at_an_hour() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "7"})) == 7
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert parse_retry_after(httpx.Headers({"retry-after": "99999"})) == 3600
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after(httpx.Headers({"retry-after": when})) or 0) <= 30
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx.Headers()) is None
    with pytest.raises(ProviderError) as caught:
        raise_for_status(response(429, {}, {"retry-after": "12"}), "create")
    assert caught.value.retry_after == 12


async def test_downloads_stream_to_disk_and_refuse_what_is_not_an_mp4(tmp_path) -> None:
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 5000
    routes = {
        "/ok": httpx.Response(200, content=mp4, headers={"content-type": "video/mp4"}),
        "/html": httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"}),
        "/gone": httpx.Response(410),
        "/big": httpx.Response(200, content=mp4, headers={"content-type": "video/mp4"}),
        "/junk": httpx.Response(
            200, content=b"x" * 100, headers={"content-type": "application/octet-stream"}
        ),
    }
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: routes[r.url.path]), base_url="http://u"
    )
    dest = tmp_path / "v.mp4"
    await download_video(client, "/ok", dest, max_bytes=10**6, timeout=5, what="download")
    assert dest.read_bytes() == mp4
    with pytest.raises(ResultExpired):
        await download_video(client, "/gone", tmp_path / "g.mp4", max_bytes=10**6, timeout=5, what="download")
    for path, code in (
        ("/html", "invalid_upstream_video"),
        ("/big", "upstream_video_too_large"),
        ("/junk", "invalid_upstream_video"),
    ):
        with pytest.raises(ProviderError) as caught:
            await download_video(client, path, tmp_path / "x.mp4", max_bytes=1000, timeout=5, what="download")
        assert caught.value.code == code, path
        assert not (tmp_path / "x.mp4").exists()  # never a partial file in place
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # and no temporary files left behind
    await client.aclose()


async def test_no_more_requests_reach_the_pool_at_once_than_the_channel_has_connections() -> None:
    inside = most = 0
    release = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await release.wait()
        inside -= 1
        return httpx.Response(200, json={})

    http = UpstreamHttp(httpx.MockTransport(handler))
    async with http.client_for(channel(max_connections=3)) as client, anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(client.get, f"videos/{n}")
        await anyio.wait_all_tasks_blocked()
        assert inside == 3  # the other seven wait their turn outside httpx's pool
        release.set()
    assert most == 3


async def test_a_request_that_waits_for_a_place_longer_than_the_pool_timeout_is_unreachable() -> None:
    release = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={})

    http = UpstreamHttp(httpx.MockTransport(handler))
    async with http.client_for(channel(max_connections=1)) as client, anyio.create_task_group() as tg:
        tg.start_soon(client.get, "videos/held")
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(ProviderError) as refused, mapped_transport_errors("poll"):
            await client.get("videos/waiting", timeout=httpx.Timeout(5.0, pool=0.05))
        assert refused.value.code == "upstream_unreachable" and refused.value.retryable
        release.set()
