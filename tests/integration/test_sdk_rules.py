"""The SDK's pure rules, which both clients share: which route a create goes to and how its fields
travel, how errors are read from any body, and how waits are computed from headers."""

from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest

from tests.integration.sdk_support import png
from vidgate.client import APIStatusError, InternalServerError, NotFoundError, Video
from vidgate.client._images import sniff_mime
from vidgate.client._pacing import poll_delay, retry_after_seconds, retry_backoff
from vidgate.client._transport import Call
from vidgate.client.errors import status_error
from vidgate.client.models import video_from_openai
from vidgate.client.videos import create_call

NONE: dict[str, Any] = dict.fromkeys(
    ["model", "images", "orientation", "size", "duration", "watermark", "private", "callback_url",
     "idempotency_key"]
)  # fmt: skip


def call(**fields: Any) -> Call:
    params: dict[str, Any] = {**NONE, "prompt": "p", **fields}
    return create_call(**params)


def test_a_create_goes_where_its_fields_are_understood() -> None:
    plain = call(size="1280x720", duration=8, watermark=False)
    assert (plain.path, plain.json) == (
        "/v1/videos", {"prompt": "p", "size": "1280x720", "seconds": "8", "watermark": False},
    )  # fmt: skip
    for unified_only in ({"orientation": "portrait"}, {"size": "Large"}, {"images": [png(), png()]}):
        made = call(**unified_only)
        assert made.path == "/v1/video/create" and made.json["model"] == "sora-2"
    upload = call(images=[png()], private=True)
    assert upload.path == "/v1/videos" and upload.json is None
    assert upload.data == {"prompt": "p", "private": "true"}
    assert upload.files is not None and upload.files["input_reference"][2] == "image/png"
    by_url = call(images=["HTTPS://example.com/a.png"])
    assert by_url.json["input_reference"] == "HTTPS://example.com/a.png"


def test_every_create_has_its_own_idempotency_key_unless_given() -> None:
    keys = {call().headers["Idempotency-Key"] for _ in range(3)}
    assert len(keys) == 3
    assert call(idempotency_key="mine").headers == {"Idempotency-Key": "mine"}


def test_images_are_named_by_their_bytes() -> None:
    assert sniff_mime(png()) == "image/png"
    assert sniff_mime(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff_mime(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_mime(b"\x00\x00\x00\x1cftypavif") == "image/avif"
    with pytest.raises(TypeError):
        call(images="a.png")  # one string, not a list


def test_errors_from_any_body() -> None:
    body = {
        "error": {
            "message": "No video",
            "type": "invalid_request_error",
            "param": "video_id",
            "code": "not_found",
        }
    }
    error = status_error(404, body, request_id="r1")
    assert isinstance(error, NotFoundError) and (error.code, error.param, error.request_id) == (
        "not_found", "video_id", "r1",
    )  # fmt: skip
    plain = status_error(503, "Service Unavailable", reason="Service Unavailable")
    assert (
        isinstance(plain, InternalServerError)
        and plain.message == "Service Unavailable"
        and plain.code is None
    )
    odd = status_error(418, json.loads("[1, 2]"), reason="I'm a teapot")
    assert type(odd) is APIStatusError and odd.message == "I'm a teapot"


def test_retry_after_in_every_form() -> None:
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=1_000_000) == pytest.approx(30)
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None
    assert [retry_backoff(n, lambda: 0.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert retry_backoff(0, lambda: 1.0) == 0.375


def test_poll_delay_prefers_the_server_then_backs_off() -> None:
    assert poll_delay({"openai-poll-after-ms": "2000", "retry-after": "5"}, 7, lambda: 0.5) == 2.0
    assert poll_delay({"retry-after": "5"}, 0, lambda: 0.5) == 5.0
    assert [poll_delay({}, n, lambda: 0.5) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert (poll_delay({}, 0, lambda: 0.0), poll_delay({}, 0, lambda: 1.0)) == (0.75, 1.25)


def test_the_openai_shape_becomes_five_statuses() -> None:
    raw = {"id": "video_1", "object": "video", "status": "in_progress", "progress": 5, "seconds": "8",
           "remixed_from_video_id": "video_0", "something_new": 1}  # fmt: skip
    video = video_from_openai(raw)
    assert (video.status, video.seconds, video.remixed_from) == ("processing", 8, "video_0")
    assert video.model_extra == {"something_new": 1} and not video.is_terminal
    assert video_from_openai({**raw, "status": "queued"}).status == "pending"
    assert video_from_openai({**raw, "status": "failed"}, status="cancelled").status == "cancelled"
    assert Video(id="x", status="completed").is_terminal
