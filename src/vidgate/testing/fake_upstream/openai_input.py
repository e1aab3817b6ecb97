"""Reading and validating `POST /v1/videos`: multipart (what the OpenAI SDK sends) or JSON (vLLM-Omni and
other clients), with the checks the real API makes."""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import anyio.to_thread
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.requests import Request

from vidgate.testing.fake_upstream.responses import BadRequest

__all__ = ["ValidRequest", "VideoRequest", "read_video_request", "reference_size", "validate"]

_SIZE = re.compile(r"^(\d+)x(\d+)$")
_DIGITS = re.compile(r"^\d+$")
_DATA_URI = re.compile(r"^data:[^,]*?;base64,(.*)$", re.DOTALL)
# A data: URI in a form field can be far bigger than Starlette's 1 MiB default for a non-file part.
_MAX_PART = 64 * 1024 * 1024
_KNOWN = {"prompt", "model", "seconds", "size"}

MISMATCH_MESSAGE = "Inpaint image must match the requested width and height"


ReferenceKind = Literal["file", "image_url", "file_id"]


@dataclass
class VideoRequest:
    """The create fields as received (strings from a form, anything from JSON)."""

    prompt: Any = None
    model: Any = "sora-2"
    seconds: Any = "4"
    size: Any = "720x1280"
    reference: ReferenceKind | None = None
    reference_bytes: bytes | None = None  # an uploaded file, or a decoded data: URI
    reference_url: str | None = None
    reference_file_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _image_url(req: VideoRequest, url: Any) -> None:
    if not isinstance(url, str) or not url:
        raise BadRequest("input_reference.image_url must be a non-empty string.", "input_reference")
    req.reference = "image_url"
    req.reference_url = url
    match = _DATA_URI.match(url)
    if match:
        try:
            req.reference_bytes = base64.b64decode(match.group(1), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("input_reference.image_url is not valid base64.", "input_reference") from exc


def _reference_object(req: VideoRequest, value: Any) -> None:
    """JSON `{"image_url": ...}` or `{"file_id": ...}`; a bare string is taken as a URL, as relays do."""
    if isinstance(value, str):
        _image_url(req, value)
    elif isinstance(value, dict) and "image_url" in value:
        _image_url(req, value["image_url"])
    elif isinstance(value, dict) and isinstance(value.get("file_id"), str):
        req.reference = "file_id"
        req.reference_file_id = value["file_id"]
    elif value is not None:
        raise BadRequest("input_reference must be a file, {image_url} or {file_id}.", "input_reference")


async def _from_form(request: Request) -> VideoRequest:
    req = VideoRequest()
    async with request.form(max_part_size=_MAX_PART) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if name == "input_reference":
                    req.reference, req.reference_bytes = "file", data
                else:
                    req.extra[name] = {"filename": value.filename, "bytes": len(data)}
            elif name in _KNOWN:
                setattr(req, name, value)
            elif name in ("input_reference", "input_reference[image_url]"):
                _image_url(req, value)
            elif name == "input_reference[file_id]":
                req.reference, req.reference_file_id = "file_id", value
            elif name in req.extra:  # a repeated key (e.g. `tags[]`): keep every value
                previous = req.extra[name]
                req.extra[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                req.extra[name] = value
    return req


async def _from_json(request: Request) -> VideoRequest:
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("We could not parse the JSON body of your request.", None, "invalid_json") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", None, "invalid_json")
    req = VideoRequest()
    for name, value in body.items():
        if name in _KNOWN:
            setattr(req, name, value)
        elif name in ("input_reference", "image_reference"):  # the latter is vLLM-Omni's name
            _reference_object(req, value)
        else:
            req.extra[name] = value
    return req


async def read_video_request(request: Request) -> VideoRequest:
    """The create fields, whichever encoding the client chose."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return await _from_form(request)
    return await _from_json(request)


class ValidRequest(NamedTuple):
    prompt: str
    model: str
    width: int
    height: int
    seconds: int
    size: str


def validate(req: VideoRequest) -> ValidRequest:
    """The checked fields of a valid request, else BadRequest naming the parameter."""
    if not isinstance(req.prompt, str) or not req.prompt.strip():
        raise BadRequest("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if not isinstance(req.model, str) or not req.model:
        raise BadRequest("Invalid value for 'model': expected a string.", "model")
    # JSON clients may send a number; the form (and the Video object) carry a string of digits.
    seconds = (
        str(req.seconds)
        if isinstance(req.seconds, int) and not isinstance(req.seconds, bool)
        else req.seconds
    )
    if not isinstance(seconds, str) or not _DIGITS.match(seconds) or int(seconds) <= 0:
        raise BadRequest(
            f"Invalid value for 'seconds': {req.seconds!r}. Expected a string of digits.", "seconds"
        )
    match = _SIZE.match(req.size) if isinstance(req.size, str) else None
    if match is None or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise BadRequest(f"Invalid value for 'size': {req.size!r}. Expected 'WIDTHxHEIGHT'.", "size")
    return ValidRequest(
        req.prompt, req.model, int(match.group(1)), int(match.group(2)), int(seconds), req.size
    )


def _decode_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # a header alone is not an image: decode it all, as the real API must
        return image.size


async def reference_size(req: VideoRequest, width: int, height: int) -> tuple[int, int] | None:
    """The reference image's pixel size, checked against the requested size (None for a remote URL or
    file id, which this offline fake cannot fetch)."""
    if req.reference_bytes is None:
        return None
    try:
        size = await anyio.to_thread.run_sync(_decode_size, req.reference_bytes)
    except Exception as exc:  # Pillow raises many kinds (and warnings-as-errors) for a non-image
        raise BadRequest("The input_reference could not be decoded as an image.", "input_reference") from exc
    if size != (width, height):
        raise BadRequest(MISMATCH_MESSAGE, "input_reference")
    return size
