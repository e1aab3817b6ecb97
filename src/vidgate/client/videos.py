"""`client.videos`: create, read, wait for, download, cancel and delete videos.

`VideoOps` holds each operation once, as a generator of transport steps (see `_transport`); `Videos`
and `AsyncVideos` only run them, so the sync and async clients cannot drift apart.

Which route a create goes to: the unified one (`POST /v1/video/create`) when the request needs what
only it takes (`orientation`, `size` small|large, more than one image), otherwise the OpenAI one
(`POST /v1/videos`), which answers with the whole video at once and takes one local image as a
multipart upload (up to the server's upload limit, 20 MiB by default, instead of the 1 MiB JSON body
that inline data: URIs must fit in). A local `last_frame` is always a data: URI in a JSON body (a
multipart text field is capped far lower than the JSON body), so with one the OpenAI route gets JSON,
its first image inline too.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vidgate.client._images import ImageInput, LocalImage, load, load_all
from vidgate.client._pacing import poll_delay
from vidgate.client._transport import (
    AsyncRunner,
    Call,
    Op,
    ProgressBytes,
    RetryPolicy,
    Sleep,
    SyncRunner,
    parse_json,
)
from vidgate.client.errors import VidgateError
from vidgate.client.models import (
    Variant,
    Video,
    VideoPage,
    needs_status_check,
    parse_model,
    video_from_openai,
)

# The model a unified create names when the caller names none (the OpenAI route's own default).
DEFAULT_MODEL = "sora-2"
_UNIFIED_SIZES = ("small", "large")
_EXTENSIONS = {"video": ".mp4", "thumbnail": ".webp", "spritesheet": ".jpg"}
OnVideo = Callable[[Video], None]


class WaitTimeout(VidgateError):
    """`wait()` / `create_and_wait()` gave up before the video ended; `.video` is its last known state
    (the task itself keeps running on the server)."""

    def __init__(self, video: Video) -> None:
        super().__init__(f"Video {video.id} is still {video.status} ({video.progress}%) after the timeout.")
        self.video = video


def _path_id(video_id: str) -> str:
    return quote(video_id.strip(), safe=":")


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _form_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def create_call(
    *,
    prompt: str,
    model: str | None,
    images: Sequence[ImageInput] | None,
    orientation: str | None,
    size: str | None,
    duration: int | None,
    watermark: bool | None,
    private: bool | None,
    callback_url: str | None,
    idempotency_key: str | None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    generate_audio: bool | None = None,
    resolution: str | None = None,
    aspect_ratio: str | None = None,
    last_frame: ImageInput | None = None,
    enhance_prompt: bool | None = None,
) -> Call:
    """The request for one create. Its Idempotency-Key (the caller's, else a new one) stays the same
    on every retry of this Call, so a create that timed out and is sent again makes one task."""
    loaded = load_all(images)
    last = None if last_frame is None else load(last_frame, 0, param="last_frame")
    headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    common = {
        "watermark": watermark,
        "private": private,
        "callback_url": callback_url,
        "resolution": resolution,
        "aspect_ratio": aspect_ratio,
        "generate_audio": generate_audio,
        "seed": seed,
        "negative_prompt": negative_prompt,
        "enhance_prompt": enhance_prompt,
        "last_frame": last.data_uri() if isinstance(last, LocalImage) else last,
    }
    unified = orientation is not None or (size or "").strip().lower() in _UNIFIED_SIZES or len(loaded) > 1
    if unified:
        body = {
            "model": model or DEFAULT_MODEL,
            "prompt": prompt,
            "images": [i.data_uri() if isinstance(i, LocalImage) else i for i in loaded] or None,
            "orientation": orientation,
            "size": size,
            "duration": duration,
            **common,
        }
        return Call("POST", "/v1/video/create", json=_present(body), headers=headers)
    fields = _present(
        {
            "prompt": prompt,
            "model": model,
            "size": size,
            "seconds": None if duration is None else str(duration),
            **common,
        }
    )
    if loaded and isinstance(loaded[0], LocalImage) and not isinstance(last, LocalImage):
        image = loaded[0]
        return Call(
            "POST",
            "/v1/videos",
            data={k: _form_value(v) for k, v in fields.items()},
            files={"input_reference": (image.name, image.data, image.mime)},
            headers=headers,
        )
    if loaded:
        first = loaded[0]
        fields["input_reference"] = first.data_uri() if isinstance(first, LocalImage) else first
    return Call("POST", "/v1/videos", json=fields, headers=headers)


class VideoOps:
    """Every videos operation, once. Each method is a generator run by a Sync/AsyncRunner."""

    def __init__(self, policy: RetryPolicy, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self.rand = rand

    def _video(self, raw: Any) -> Op[Video]:
        """A Video from the OpenAI shape, asking the unified query for the status when that shape
        cannot say (failed with code `cancelled`)."""
        if not isinstance(raw, dict):
            return parse_model(Video, raw)  # raises, saying the answer is not an object
        status = None
        if needs_status_check(raw):
            query = yield from self.policy.json(
                Call("GET", "/v1/video/query", params={"id": str(raw.get("id"))})
            )
            status = query.get("status") if isinstance(query, dict) else None
        return video_from_openai(raw, status=status)

    def _retrieve(self, video_id: str) -> Op[tuple[Video, Mapping[str, str]]]:
        response = yield from self.policy.send(Call("GET", f"/v1/videos/{_path_id(video_id)}"))
        video = yield from self._video(parse_json(response))
        return video, response.headers

    def create(self, **params: Any) -> Op[Video]:
        call = create_call(**params)
        body = yield from self.policy.json(call)
        if call.path == "/v1/videos":
            return (yield from self._video(body))
        # The unified create answers {id, status, status_update_time}; the whole video comes from a
        # read. The video exists now whatever that read does, so a failed read must not look like a
        # failed create (the caller would create it again): it falls back to what the create said.
        created = parse_model(Video, body)
        try:
            video, _ = yield from self._retrieve(created.id)
        except VidgateError:
            return created
        return video

    def retrieve(self, video_id: str) -> Op[Video]:
        video, _ = yield from self._retrieve(video_id)
        return video

    def list(self, *, limit: int, after: str | None, order: str, status: str | None) -> Op[VideoPage]:
        params = _present({"limit": limit, "after": after, "order": order, "status": status})
        body = yield from self.policy.json(Call("GET", "/v1/videos", params=params))
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return parse_model(VideoPage, body)  # raises, naming what is missing
        videos = []
        for raw in body["data"]:
            videos.append((yield from self._video(raw)))
        return VideoPage(
            data=videos,
            has_more=bool(body.get("has_more")),
            first_id=body.get("first_id"),
            last_id=body.get("last_id"),
        )

    def cancel(self, video_id: str) -> Op[Video]:
        body = yield from self.policy.json(Call("POST", f"/v1/videos/{_path_id(video_id)}/cancel"))
        return (yield from self._video(body))

    def delete(self, video_id: str) -> Op[None]:
        yield from self.policy.send(Call("DELETE", f"/v1/videos/{_path_id(video_id)}"))

    def remix(self, video_id: str, *, prompt: str, idempotency_key: str | None) -> Op[Video]:
        call = Call(
            "POST",
            f"/v1/videos/{_path_id(video_id)}/remix",
            json={"prompt": prompt},
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
        )
        body = yield from self.policy.json(call)
        return (yield from self._video(body))

    def download(
        self, video_id: str, path: str | Path, *, variant: str, on_progress: ProgressBytes | None
    ) -> Op[Path]:
        target = Path(path)
        if target.is_dir():
            stem = video_id.strip().replace(":", "_").replace("/", "_")
            suffix = "" if variant == "video" else f"-{variant}"
            target = target / f"{stem}{suffix}{_EXTENSIONS.get(variant, '')}"
        call = Call(
            "GET",
            f"/v1/videos/{_path_id(video_id)}/content",
            params={"variant": variant},
            download_to=target,
            on_bytes=on_progress,
        )
        yield from self.policy.send(call)
        return target

    def wait(self, video_id: str, *, timeout: float | None, on_progress: OnVideo | None) -> Op[Video]:
        """Poll until the video ends, paced by the server; `on_progress` sees the first state and every
        change of status or progress. Raises WaitTimeout with the last state when `timeout` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Video | None = None
        unchanged = 0
        while True:
            video, headers = yield from self._retrieve(video_id)
            if last is None or (video.status, video.progress) != (last.status, last.progress):
                unchanged = 0
                if on_progress is not None:
                    on_progress(video)
            else:
                unchanged += 1
            last = video
            if video.is_terminal:
                return video
            delay = poll_delay(headers, unchanged, self.rand)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(video)
                delay = min(delay, left)  # one last look at the deadline, then give up
            yield Sleep(delay)

    def create_and_wait(
        self, *, timeout: float | None, on_progress: OnVideo | None, **params: Any
    ) -> Op[Video]:
        video = yield from self.create(**params)
        if video.is_terminal:
            if on_progress is not None:
                on_progress(video)
            return video
        return (yield from self.wait(video.id, timeout=timeout, on_progress=on_progress))


class Videos:
    """`Client.videos` (blocking)."""

    def __init__(self, runner: SyncRunner, ops: VideoOps) -> None:
        self._run = runner.run
        self._ops = ops

    def create(
        self,
        *,
        prompt: str,
        model: str | None = None,
        images: Sequence[ImageInput] | None = None,
        orientation: str | None = None,
        size: str | None = None,
        duration: int | None = None,
        watermark: bool | None = None,
        private: bool | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        generate_audio: bool | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        last_frame: ImageInput | None = None,
        enhance_prompt: bool | None = None,
    ) -> Video:
        return self._run(
            self._ops.create(
                prompt=prompt, model=model, images=images, orientation=orientation, size=size,
                duration=duration, watermark=watermark, private=private, callback_url=callback_url,
                idempotency_key=idempotency_key, seed=seed, negative_prompt=negative_prompt,
                generate_audio=generate_audio, resolution=resolution, aspect_ratio=aspect_ratio,
                last_frame=last_frame, enhance_prompt=enhance_prompt,
            )
        )  # fmt: skip

    def create_and_wait(
        self,
        *,
        prompt: str,
        model: str | None = None,
        images: Sequence[ImageInput] | None = None,
        orientation: str | None = None,
        size: str | None = None,
        duration: int | None = None,
        watermark: bool | None = None,
        private: bool | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        generate_audio: bool | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        last_frame: ImageInput | None = None,
        enhance_prompt: bool | None = None,
        timeout: float | None = None,
        on_progress: OnVideo | None = None,
    ) -> Video:
        return self._run(
            self._ops.create_and_wait(
                prompt=prompt, model=model, images=images, orientation=orientation, size=size,
                duration=duration, watermark=watermark, private=private, callback_url=callback_url,
                idempotency_key=idempotency_key, seed=seed, negative_prompt=negative_prompt,
                generate_audio=generate_audio, resolution=resolution, aspect_ratio=aspect_ratio,
                last_frame=last_frame, enhance_prompt=enhance_prompt, timeout=timeout,
                on_progress=on_progress,
            )
        )  # fmt: skip

    def retrieve(self, video_id: str) -> Video:
        return self._run(self._ops.retrieve(video_id))

    def list(
        self, *, limit: int = 20, after: str | None = None, order: str = "desc", status: str | None = None
    ) -> VideoPage:
        return self._run(self._ops.list(limit=limit, after=after, order=order, status=status))

    def cancel(self, video_id: str) -> Video:
        return self._run(self._ops.cancel(video_id))

    def delete(self, video_id: str) -> None:
        self._run(self._ops.delete(video_id))

    def remix(self, video_id: str, *, prompt: str, idempotency_key: str | None = None) -> Video:
        return self._run(self._ops.remix(video_id, prompt=prompt, idempotency_key=idempotency_key))

    def download(
        self,
        video_id: str,
        path: str | Path,
        *,
        variant: Variant = "video",
        on_progress: ProgressBytes | None = None,
    ) -> Path:
        return self._run(self._ops.download(video_id, path, variant=variant, on_progress=on_progress))

    def wait(
        self, video_id: str, *, timeout: float | None = None, on_progress: OnVideo | None = None
    ) -> Video:
        return self._run(self._ops.wait(video_id, timeout=timeout, on_progress=on_progress))


class AsyncVideos:
    """`AsyncClient.videos`: the same methods as `Videos`, awaitable."""

    def __init__(self, runner: AsyncRunner, ops: VideoOps) -> None:
        self._run = runner.run
        self._ops = ops

    async def create(
        self,
        *,
        prompt: str,
        model: str | None = None,
        images: Sequence[ImageInput] | None = None,
        orientation: str | None = None,
        size: str | None = None,
        duration: int | None = None,
        watermark: bool | None = None,
        private: bool | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        generate_audio: bool | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        last_frame: ImageInput | None = None,
        enhance_prompt: bool | None = None,
    ) -> Video:
        return await self._run(
            self._ops.create(
                prompt=prompt, model=model, images=images, orientation=orientation, size=size,
                duration=duration, watermark=watermark, private=private, callback_url=callback_url,
                idempotency_key=idempotency_key, seed=seed, negative_prompt=negative_prompt,
                generate_audio=generate_audio, resolution=resolution, aspect_ratio=aspect_ratio,
                last_frame=last_frame, enhance_prompt=enhance_prompt,
            )
        )  # fmt: skip

    async def create_and_wait(
        self,
        *,
        prompt: str,
        model: str | None = None,
        images: Sequence[ImageInput] | None = None,
        orientation: str | None = None,
        size: str | None = None,
        duration: int | None = None,
        watermark: bool | None = None,
        private: bool | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        generate_audio: bool | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        last_frame: ImageInput | None = None,
        enhance_prompt: bool | None = None,
        timeout: float | None = None,
        on_progress: OnVideo | None = None,
    ) -> Video:
        return await self._run(
            self._ops.create_and_wait(
                prompt=prompt, model=model, images=images, orientation=orientation, size=size,
                duration=duration, watermark=watermark, private=private, callback_url=callback_url,
                idempotency_key=idempotency_key, seed=seed, negative_prompt=negative_prompt,
                generate_audio=generate_audio, resolution=resolution, aspect_ratio=aspect_ratio,
                last_frame=last_frame, enhance_prompt=enhance_prompt, timeout=timeout,
                on_progress=on_progress,
            )
        )  # fmt: skip

    async def retrieve(self, video_id: str) -> Video:
        return await self._run(self._ops.retrieve(video_id))

    async def list(
        self, *, limit: int = 20, after: str | None = None, order: str = "desc", status: str | None = None
    ) -> VideoPage:
        return await self._run(self._ops.list(limit=limit, after=after, order=order, status=status))

    async def cancel(self, video_id: str) -> Video:
        return await self._run(self._ops.cancel(video_id))

    async def delete(self, video_id: str) -> None:
        await self._run(self._ops.delete(video_id))

    async def remix(self, video_id: str, *, prompt: str, idempotency_key: str | None = None) -> Video:
        return await self._run(self._ops.remix(video_id, prompt=prompt, idempotency_key=idempotency_key))

    async def download(
        self,
        video_id: str,
        path: str | Path,
        *,
        variant: Variant = "video",
        on_progress: ProgressBytes | None = None,
    ) -> Path:
        return await self._run(self._ops.download(video_id, path, variant=variant, on_progress=on_progress))

    async def wait(
        self, video_id: str, *, timeout: float | None = None, on_progress: OnVideo | None = None
    ) -> Video:
        return await self._run(self._ops.wait(video_id, timeout=timeout, on_progress=on_progress))
