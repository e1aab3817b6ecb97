"""`vidgate models list|show`: the models a key may use on a vidgate server, what each can do and what
it costs (`GET /v1/models`, through the SDK); and `vidgate models check DIR`: is this local model
directory complete for a pipeline? (Generates nothing and imports no torch: the diffusion extra need not
be installed on the machine that checks.)"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidgate.cli.connection import BaseUrlOption, Connection, KeyOption, dump, open_client
from vidgate.cli.output import JsonOption, format_time, print_fields, print_json, print_table
from vidgate.providers.diffusion.model_dir import PIPELINES, ModelDirError, check_model_dir

if TYPE_CHECKING:
    from vidgate.client import ModelInfo

models_app = typer.Typer(
    help="Models: those your key may use on a vidgate server (list, show), and local model directories "
    "for the diffusion engine (check).",
    no_args_is_help=True,
)


@models_app.command("list")
def models_list(
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """The models this key may use, with durations, resolutions, aspect ratios, sound, images and price
    (credits per clip, cheapest-dearest): a table on a terminal, tab-separated when piped."""
    with open_client(Connection(base_url=base_url, key=key)) as client:
        models = client.models.list()
    if json_output:
        print_json({"object": "list", "data": [dump(m) for m in models]})
        return
    rows = [
        (
            m.id,
            _join(m.capabilities.durations),
            _shapes(m),
            _join(m.capabilities.aspect_ratios) or "-",
            _audio(m),
            _images(m),
            _price_range(m),
        )
        for m in models
    ]
    print_table(("model", "seconds", "resolutions", "ratios", "audio", "images", "price"), rows)


@models_app.command("show")
def models_show(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="A model id from `vidgate models list`.")],
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """One model: everything it can do, and the credits a clip costs for each resolution, sound and
    duration. A model the key may not use is a 404, like one nobody serves."""
    with open_client(Connection(base_url=base_url, key=key)) as client:
        model = client.models.retrieve(model_id)
    if json_output:
        print_json(dump(model))
        return
    caps = model.capabilities
    fields = [
        ("id", model.id),
        ("owned by", str(model.owned_by)),
        ("created", format_time(model.created)),
        ("seconds", _join(caps.durations)),
        ("resolutions", _join(caps.resolutions) or "-"),
        ("aspect ratios", _join(caps.aspect_ratios) or "-"),
        ("sizes", _join(caps.sizes)),
        ("audio", _audio(model)),
        ("images", _images(model)),
        ("negative prompt", _yes(caps.negative_prompt)),
        ("seed", _yes(caps.seed)),
        ("enhance prompt", _yes(caps.enhance_prompt)),
    ]
    if model.pricing is None:
        fields.append(("price", "free (no channel charges for it)"))
    else:
        for shape, by_sound in model.pricing.per_clip.items():
            for sound, by_seconds in by_sound.items():
                clips = ", ".join(f"{s} s: {price}" for s, price in by_seconds.items())
                fields.append(
                    (f"price {shape} {sound.replace('_', ' ')}", f"{clips} {model.pricing.currency}")
                )
    print_fields(fields)


def _join(values: list[int] | list[str]) -> str:
    return ", ".join(str(v) for v in values)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _shapes(model: ModelInfo) -> str:
    """The resolution words, or the sizes where no word names them."""
    return _join(model.capabilities.resolutions) or _join(model.capabilities.sizes)


def _audio(model: ModelInfo) -> str:
    caps = model.capabilities
    if caps.audio == "optional":
        return f"optional ({'on' if caps.audio_default else 'off'} unless asked)"
    return caps.audio


def _images(model: ModelInfo) -> str:
    """`first, last, 4 refs (max 4)`: which images it takes, and how many `images` at most."""
    images = model.capabilities.images
    kinds = [
        word
        for word, present in (
            ("first", images.first_frame),
            ("last", images.last_frame),
            (f"{images.reference_images} refs", images.reference_images > 0),
        )
        if present
    ]
    if not kinds:
        return "none"
    return f"{', '.join(kinds)} (max {images.max})"


def _price_range(model: ModelInfo) -> str:
    """The cheapest and the dearest clip, in credits; `free` when no channel charges for the model."""
    if model.pricing is None:
        return "free"
    prices = [
        Decimal(price)
        for by_sound in model.pricing.per_clip.values()
        for by_seconds in by_sound.values()
        for price in by_seconds.values()
    ]
    if not prices:
        return "-"
    low, high = min(prices), max(prices)
    return f"{low}" if low == high else f"{low}-{high}"


@models_app.command("check")
def models_check(
    model_dir: Annotated[Path, typer.Argument(help="A diffusers pipeline directory.")],
    pipeline: Annotated[
        str, typer.Option(help=f"The pipeline it must serve: {' or '.join(PIPELINES)}.")
    ] = "wan-ti2v",
) -> None:
    """Check that DIR holds every component PIPELINE loads. Exit 0: complete; 1: the missing part is named."""
    if pipeline not in PIPELINES:
        raise typer.BadParameter(f"must be one of {', '.join(PIPELINES)}", param_hint="--pipeline")
    try:
        report = check_model_dir(model_dir, pipeline)
    except ModelDirError as exc:
        typer.echo(f"not usable: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"ok: {report.path} is a {pipeline} pipeline ({report.pipeline_class}): "
        f"{', '.join(report.components)}; {report.bytes_on_disk / 1e6:.1f} MB"
    )
