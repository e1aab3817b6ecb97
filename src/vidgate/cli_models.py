"""`vidgate models check DIR`: is this local model directory complete for a pipeline? Generates nothing
and imports no torch (the diffusion extra need not be installed on the machine that checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidgate.providers.diffusion.model_dir import PIPELINES, ModelDirError, check_model_dir

models_app = typer.Typer(help="Local model directories for the diffusion engine.", no_args_is_help=True)


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
