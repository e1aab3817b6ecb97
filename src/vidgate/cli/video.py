"""`vidgate video create|get|list|wait|cancel|delete|download|webhook-secret`: videos on a vidgate server,
through the SDK.

Waiting is where the care goes: on a terminal a progress display (cli/wait_display.py), otherwise JSON
Lines; Ctrl-C detaches (the task goes on, the way back is printed), --timeout exits 3 with the task still
running. Exit codes: cli/output.py. Only typer and the CLI's own small modules are imported up front: the
SDK when a command opens its client, rich when a terminal gets a table or a progress display.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidgate.cli.connection import (
    BaseUrlOption,
    Connection,
    KeyOption,
    RotateOption,
    dump,
    open_client,
    show_webhook_secret,
)
from vidgate.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    JsonOption,
    fail,
    format_duration,
    format_time,
    print_fields,
    print_json,
    print_list_json,
    print_table,
    say,
    stdout_is_terminal,
)
from vidgate.cli.values import parse_duration

if TYPE_CHECKING:
    from vidgate.client import Client, Video

video_app = typer.Typer(
    help="Videos on a vidgate server (over HTTP, with VIDGATE_BASE_URL and VIDGATE_API_KEY): create one, "
    "wait for it with a progress display, download it, list, cancel, delete; the key's webhook secret.",
    no_args_is_help=True,
)


class Orientation(enum.StrEnum):
    portrait = "portrait"
    landscape = "landscape"


class Resolution(enum.StrEnum):
    r480p = "480p"
    r720p = "720p"
    r1080p = "1080p"


class AspectRatio(enum.StrEnum):
    wide = "16:9"
    tall = "9:16"
    square = "1:1"
    classic = "4:3"
    classic_tall = "3:4"
    cinema = "21:9"


class Variant(enum.StrEnum):
    video = "video"
    thumbnail = "thumbnail"
    spritesheet = "spritesheet"


class Order(enum.StrEnum):
    desc = "desc"
    asc = "asc"


class ListStatus(enum.StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


EXTENSIONS = {Variant.video: "mp4", Variant.thumbnail: "webp", Variant.spritesheet: "jpg"}
# The API fields a create's 400 may name (either dialect's), as the options that set them.
CREATE_FLAGS = {
    "prompt": "--prompt",
    "model": "--model",
    "images": "--image",
    "input_reference": "--image",
    "size": "--size",
    "orientation": "--orientation",
    "duration": "--duration",
    "seconds": "--duration",
    "watermark": "--watermark",
    "private": "--private",
    "callback_url": "--callback-url",
    "Idempotency-Key": "--idempotency-key",
    "seed": "--seed",
    "negative_prompt": "--negative-prompt",
    "generate_audio": "--audio",
    "audio": "--audio",
    "resolution": "--resolution",
    "aspect_ratio": "--aspect-ratio",
    "last_frame": "--last-frame",
    "enhance_prompt": "--enhance-prompt",
}
_SIZE = re.compile(r"small|large|\d{2,5}x\d{2,5}")

VideoId = Annotated[
    str, typer.Argument(help="The video's id in any form the server gives (sora-2:task_…, video_…).")
]
TimeoutOption = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        help="Stop waiting after this long (90, 90s, 30m, 1h30m) and exit 3; the task goes on. "
        "Default: wait until it ends.",
        show_default=False,
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Download the video here once it has completed (implies --wait).",
        dir_okay=False,
    ),
]


def _images(values: list[str] | None) -> list[str | Path] | None:
    """URLs (http(s), data:) as they are; anything else must be a readable local file, which the SDK
    sends up (a data: URI or an upload)."""
    if not values:
        return None
    return [_image(value, "--image") for value in values]


def _image(value: str, option: str) -> str | Path:
    if re.match(r"(?i)(https?|data):", value):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise typer.BadParameter(f"{value!r} is neither an http(s) URL nor a file", param_hint=option)
    return path


@video_app.command(
    "create",
    help="Create a video. Without --wait, prints its id (the last line of stdout) and returns at once.\n\n"
    "With --wait or -o: on a terminal, a progress display (status, percent, elapsed), then a download bar "
    "for -o; piped or with --json, one JSON object per status change (JSON Lines).\n\n"
    "Exit codes: 0 completed, 1 failed or cancelled (or an API error), 2 bad usage, 3 --timeout passed "
    "(the task goes on), 130 Ctrl-C while waiting (detached: the task goes on; the command that resumes "
    "is printed).",
)
def create(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What the video shows.")],
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            "-i",
            help="A local image file or an http(s) URL; repeat for several (the built-in engine pans "
            "across each in turn).",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Default: the server's (sora-2).")
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="small (720p), large (1080p), or WxH such as 1280x720.")
    ] = None,
    orientation: Annotated[Orientation | None, typer.Option(help="With small/large.")] = None,
    duration: Annotated[
        int | None, typer.Option(min=1, help="Seconds (what the model's channels allow).")
    ] = None,
    resolution: Annotated[
        Resolution | None, typer.Option(help="480p, 720p or 1080p (see vidgate models list).")
    ] = None,
    aspect_ratio: Annotated[
        AspectRatio | None, typer.Option(help="16:9, 9:16, 1:1, 4:3, 3:4 or 21:9 (see vidgate models list).")
    ] = None,
    last_frame: Annotated[
        str | None,
        typer.Option(
            help="The video's last frame, for models that take one: a local image file (sent inline as "
            "a data: URI) or an http(s) URL."
        ),
    ] = None,
    audio: Annotated[
        bool | None,
        typer.Option(
            "--audio/--no-audio", help="With or without sound, as the model allows (see vidgate models list)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, max=2**32 - 1, help="A seed, for models that take one.")
    ] = None,
    negative_prompt: Annotated[
        str | None, typer.Option(help="What the video must not show, for models that take it.")
    ] = None,
    enhance_prompt: Annotated[
        bool | None,
        typer.Option(
            "--enhance-prompt/--no-enhance-prompt",
            help="Let the model rewrite the prompt first (models that offer it).",
        ),
    ] = None,
    watermark: Annotated[
        bool | None,
        typer.Option("--watermark/--no-watermark", help="--no-watermark: only a clean video will do."),
    ] = None,
    private: Annotated[
        bool | None, typer.Option("--private/--no-private", help="Passed to channels.")
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="Receives a signed webhook when the task ends.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Repeat a create safely: the same key returns the first task.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the task ends (default: print its id).")
    ] = False,
    timeout: TimeoutOption = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    # The help is on the decorator: typer keeps a docstring's line breaks.
    if size is not None and not _SIZE.fullmatch(size.strip().lower()):
        raise typer.BadParameter(f"{size!r} is not small, large or WxH (e.g. 1280x720)", param_hint="--size")
    wait_seconds = None if timeout is None else parse_duration(timeout, option="--timeout")
    _check_output(output)
    images = _images(image)
    last = None if last_frame is None else _image(last_frame, "--last-frame")
    conn = Connection(base_url, key)
    with open_client(conn, flags=CREATE_FLAGS) as client:
        try:
            video = client.videos.create(
                prompt=prompt,
                model=model,
                images=images,
                orientation=None if orientation is None else orientation.value,
                size=None if size is None else size.strip().lower(),
                duration=duration,
                watermark=watermark,
                private=private,
                callback_url=callback_url,
                idempotency_key=idempotency_key,
                seed=seed,
                negative_prompt=negative_prompt,
                generate_audio=audio,
                resolution=None if resolution is None else resolution.value,
                aspect_ratio=None if aspect_ratio is None else aspect_ratio.value,
                last_frame=last,
                enhance_prompt=enhance_prompt,
            )
        except KeyboardInterrupt:
            say(
                "\ninterrupted before the server answered: the video may have been created "
                "(see vidgate video list)"
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        if not (wait or output is not None):
            if json_output:
                print_json(dump(video))
            else:
                say(f"created {video.id} ({video.status}); follow it with: vidgate video wait {video.id}")
                typer.echo(video.id)
            return
        _follow(client, video, timeout=wait_seconds, output=output, json_output=json_output)


@video_app.command(
    "wait",
    help="Wait for a video to end: a progress display on a terminal, JSON Lines otherwise; -o downloads "
    "it.\n\nExit codes: 0 completed, 1 failed or cancelled, 3 --timeout passed, 130 Ctrl-C (detached).",
)
def wait_command(
    video_id: VideoId,
    timeout: TimeoutOption = None,
    output: OutputOption = None,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    wait_seconds = None if timeout is None else parse_duration(timeout, option="--timeout")
    _check_output(output)
    with open_client(Connection(base_url, key)) as client:
        video = client.videos.retrieve(video_id)
        _follow(client, video, timeout=wait_seconds, output=output, json_output=json_output)


def _follow(
    client: Client, video: Video, *, timeout: float | None, output: Path | None, json_output: bool
) -> None:
    """Wait for `video` to end, showing its progress; download it to `output` if it completed; exit with
    the code its outcome calls for."""
    from vidgate.cli.wait_display import JsonLinesDisplay, TerminalDisplay, WaitDisplay
    from vidgate.client import WaitTimeout

    display: WaitDisplay = (
        JsonLinesDisplay() if json_output or not stdout_is_terminal() else TerminalDisplay(video.id)
    )
    resume = f"vidgate video wait {video.id}" + ("" if output is None else f" -o {output}")
    try:
        with display:
            display.update(video)
            final = (
                video
                if video.is_terminal
                else client.videos.wait(video.id, timeout=timeout, on_progress=display.update)
            )
            display.update(final)
    except WaitTimeout as exc:
        display.finish(exc.video)
        state = exc.video.status + ("" if exc.video.status == "pending" else f" ({exc.video.progress}%)")
        say(
            f"error: timed out after {format_duration(timeout or 0)}: {video.id} is still {state} and goes "
            f"on running on the server\nresume with: {resume}"
        )
        raise typer.Exit(EXIT_TIMEOUT) from None
    except KeyboardInterrupt:
        say(
            f"\ndetached: {video.id} goes on running on the server (Ctrl-C never cancels it)\n"
            f"resume with: {resume}\ncancel with: vidgate video cancel {video.id}"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if final.status != "completed":
        display.finish(final)
        reason = "" if final.error is None else f": {final.error.message} ({final.error.code})"
        fail(f"{final.id} {final.status}{reason}", EXIT_FAILED)
    saved: Path | None = None
    if output is not None:
        saved = _download(client, final.id, output, Variant.video, show_bar=display.is_terminal)
    display.finish(final, output=saved)


def _download(client: Client, video_id: str, path: Path, variant: Variant, *, show_bar: bool) -> Path:
    """Download one variant to `path`, with a download bar on a terminal; Ctrl-C exits 130 and says how to
    start again."""
    from vidgate.cli.wait_display import download_bar

    try:
        with download_bar(enabled=show_bar) as on_progress:
            return client.videos.download(video_id, path, variant=variant.value, on_progress=on_progress)
    except KeyboardInterrupt:
        say(
            f"\ndownload interrupted; start it again with: vidgate video download {video_id} "
            f"--variant {variant.value} -o {path}"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as exc:  # the server's bytes arrived, the file could not be written
        fail(f"cannot write {path}: {exc.strerror or exc}")


def _check_output(path: Path | None) -> None:
    """Refuse, before anything is created, a file that could not be written once the video is ready."""
    if path is not None and not path.resolve().parent.is_dir():
        raise typer.BadParameter(f"the folder of {str(path)!r} does not exist", param_hint="--output")


@video_app.command("get")
def get(
    video_id: VideoId,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Show one video: status, progress, model, size, length, times, error."""
    with open_client(Connection(base_url, key)) as client:
        video = client.videos.retrieve(video_id)
    if json_output:
        print_json(dump(video))
        return
    fields = [
        ("id", video.id),
        ("status", video.status),
        ("progress", f"{video.progress}%"),
        ("model", str(video.model)),
        ("prompt", str(video.prompt)),
        ("size", str(video.size)),
        ("seconds", str(video.seconds)),
        ("created", format_time(video.created_at)),
        ("completed", format_time(video.completed_at)),
    ]
    if video.expires_at is not None:
        fields.append(("media deleted at", format_time(video.expires_at)))
    if video.error is not None:
        fields.append(("error", f"{video.error.message} ({video.error.code})"))
    print_fields(fields)


@video_app.command("list")
def list_videos(
    limit: Annotated[int, typer.Option(min=1, max=100, help="Videos per page.")] = 20,
    after: Annotated[str | None, typer.Option(help="Start after this id (the last of a page).")] = None,
    order: Annotated[Order, typer.Option(help="desc: newest first.")] = Order.desc,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
    status: Annotated[
        ListStatus | None,
        typer.Option(help="Only videos in this status (failed leaves out cancelled ones)."),
    ] = None,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """List this key's videos, newest first: a table on a terminal, tab-separated when piped."""
    videos: list[Any] = []
    with open_client(Connection(base_url, key)) as client:
        while True:
            page = client.videos.list(
                limit=limit, after=after, order=order.value, status=None if status is None else status.value
            )
            videos.extend(page.data)
            if not (all_pages and page.has_more and page.last_id):
                has_more = page.has_more
                break
            after = page.last_id
    if json_output:
        last_id = videos[-1].id if videos else None
        print_list_json([dump(v) for v in videos], has_more=has_more, last_id=last_id)
        return
    rows = [
        (
            v.id,
            v.status,
            f"{v.progress}%",
            str(v.model),
            str(v.size),
            str(v.seconds),
            format_time(v.created_at),
        )
        for v in videos
    ]
    print_table(("id", "status", "progress", "model", "size", "seconds", "created"), rows)
    if has_more and stdout_is_terminal():
        say(f"more: vidgate video list --after {videos[-1].id}  (or --all)")


@video_app.command("cancel")
def cancel(
    video_id: VideoId,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel a video that has not ended (the upstream job is cancelled too, by a worker)."""
    with open_client(Connection(base_url, key)) as client:
        video = client.videos.cancel(video_id)
    if json_output:
        print_json(dump(video))
    else:
        typer.echo(f"{video.id}\t{video.status}")


@video_app.command("delete")
def delete(
    video_id: VideoId,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Delete a video: its stored media and the task (an unfinished one is cancelled first)."""
    with open_client(Connection(base_url, key)) as client:
        client.videos.delete(video_id)
    if json_output:
        print_json({"id": video_id, "object": "video.deleted", "deleted": True})
    else:
        say(f"deleted {video_id}")


@video_app.command("webhook-secret")
def webhook_secret(
    rotate: RotateOption = False,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Print the secret that signs this key's webhooks (--callback-url) on stdout, for the receiver to
    check `X-Vidgate-Signature` with (docs/api.md §6)."""
    with open_client(Connection(base_url, key)) as client:
        secret = client.webhooks.rotate_secret() if rotate else client.webhooks.secret()
    show_webhook_secret(secret, rotated=rotate, json_output=json_output)


@video_app.command("download")
def download(
    video_id: VideoId,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="Where to write it (default: <id>.mp4|.webp|.jpg here)."
        ),
    ] = None,
    variant: Annotated[
        Variant, typer.Option(help="video (MP4), thumbnail (WebP) or spritesheet (JPEG).")
    ] = Variant.video,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Download a completed video (or its thumbnail or spritesheet): prints the path written."""
    path = output or Path(f"{_file_stem(video_id)}.{EXTENSIONS[variant]}")
    _check_output(path)
    with open_client(Connection(base_url, key)) as client:
        saved = _download(client, video_id, path, variant, show_bar=stdout_is_terminal() and not json_output)
    if json_output:
        print_json(
            {"id": video_id, "variant": variant.value, "path": str(saved), "bytes": saved.stat().st_size}
        )
    else:
        typer.echo(str(saved))


def _file_stem(video_id: str) -> str:
    """`sora-2:task_01kb…` -> `task_01kb…`: a file name without the model's part (it may hold ':' or '/')."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", video_id.strip().rsplit(":", 1)[-1])
    return stem or "video"
