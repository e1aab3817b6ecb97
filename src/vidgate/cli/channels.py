"""`vidgate channels` (what is configured, and each circuit's state) and `vidgate channels test`: local
commands, on the settings and the database (the runtime is imported when a command runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vidgate.cli.local import load_settings, run_or_exit
from vidgate.cli.output import print_table, say_rich

if TYPE_CHECKING:
    from vidgate.config import Settings
    from vidgate.domain.circuit import ChannelHealth
    from vidgate.domain.routing import ChannelProfile
    from vidgate.providers.base import ProbeResult

channels_app = typer.Typer(help="Channels: list them, test them.", invoke_without_command=True)


def _settings() -> Settings:
    from vidgate.logs import configure_logging

    settings = load_settings()
    configure_logging(settings)  # to stderr: log lines (outbound requests too) stay out of stdout's table
    return settings


@channels_app.callback()
def channels_list(ctx: typer.Context) -> None:
    """List the configured channels: models, capabilities, load and circuit state."""
    if ctx.invoked_subcommand is not None:
        return
    from vidgate.domain.circuit import ChannelHealth
    from vidgate.runtime import open_runtime

    settings = _settings()

    async def gather() -> tuple[list[ChannelProfile], dict[str, ChannelHealth], dict[str, int]]:
        async with open_runtime(settings) as runtime:
            health = dict(await runtime.health.snapshot(fresh=True))
            return list(runtime.catalog.channels), health, await runtime.tasks.active_per_channel()

    profiles, health, load = run_or_exit(gather)
    by_name = {c.name: c for c in settings.channels}
    header = (
        "name",
        "kind",
        "models",
        "durations",
        "sizes",
        "images",
        "watermark",
        "rank",
        "load",
        "circuit",
    )
    rows = []
    for p in profiles:
        channel = by_name[p.name]
        models = ", ".join(
            m if channel.upstream_model(m) == m else f"{m}->{channel.upstream_model(m)}"
            for m in sorted(p.models)
        )
        state = health.get(p.name, ChannelHealth())
        circuit = state.state.value + (f" ({state.failures} failures)" if state.failures else "")
        cap = "" if p.max_concurrent is None else f"/{p.max_concurrent}"
        rows.append(
            (
                p.name + ("" if p.enabled else " (disabled)"),
                p.kind,
                models,
                ",".join(str(d) for d in sorted(p.durations)),
                ",".join(sorted(p.sizes)),
                str(p.max_images),
                p.watermark_free,
                f"priority {p.priority}, weight {p.weight:g}",
                f"{load.get(p.name, 0)}{cap}",
                circuit,
            )
        )
    print_table(header, rows)


@channels_app.command("test")
def channels_test(
    name: Annotated[str | None, typer.Argument(help="A channel's name; all channels when omitted.")] = None,
) -> None:
    """Check that each channel answers and accepts our credentials, without creating a (paid) job."""
    import anyio

    from vidgate.providers.base import ProbeResult
    from vidgate.runtime import open_runtime

    settings = _settings()
    names = [c.name for c in settings.channels]
    if name is not None and name not in names:
        say_rich(f"[red]no channel named {name!r}; configured: {', '.join(names)}[/red]")
        raise typer.Exit(2)
    wanted = [name] if name else names

    async def probe_all() -> list[tuple[str, ProbeResult]]:
        async with open_runtime(settings) as runtime:
            results = []
            for channel in wanted:
                try:
                    with anyio.fail_after(30):
                        result = await runtime.providers(channel).probe()
                except TimeoutError:
                    result = ProbeResult(False, "no answer within 30 s")
                results.append((channel, result))
            return results

    results = run_or_exit(probe_all)
    for channel, result in results:
        mark = "ok  " if result.ok else "FAIL"
        typer.echo(f"{mark}  {channel}: {result.verdict}")
    if not all(r.ok for _, r in results):
        raise typer.Exit(1)
