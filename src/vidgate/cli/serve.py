"""`vidgate serve` (the HTTP API, with an embedded worker by default) and `vidgate worker` (a worker on
its own): the two top-level commands that run the gateway. The root app (cli/root.py) registers them.

The server's modules (FastAPI, uvicorn, the runtime, the database) are imported when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vidgate.cli.local import load_settings, run_or_exit
from vidgate.cli.output import say_rich

if TYPE_CHECKING:
    from vidgate.config import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (VIDGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (VIDGATE_PORT).")] = None,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Run the embedded worker.")] = True,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="API processes on the one port (VIDGATE_HTTP_WORKERS); the embedded worker runs in "
            "the first only. See docs/scaling.md.",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (and, by default, an embedded worker in the same process).

    The first SIGINT or SIGTERM stops gracefully, a second one at once (see vidgate.api.signals);
    with --workers N, a supervising process passes them on to each (see vidgate.api.supervisor)."""
    import anyio

    from vidgate.api.app import create_app
    from vidgate.api.http_server import uvicorn_options
    from vidgate.api.signals import run_uvicorn
    from vidgate.logs import configure_logging
    from vidgate.store.schema import SchemaOutOfDate, prepare_database

    settings = load_settings(host=host, port=port, http_workers=workers)
    configure_logging(settings)
    try:
        anyio.run(prepare_database, settings)
    except SchemaOutOfDate as exc:
        say_rich(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if not anyio.run(_any_active_key, settings):
        say_rich("no API key yet: create one with  vidgate keys create --name NAME")
    run_worker = worker and settings.embedded_worker
    if settings.http_workers > 1:
        from vidgate.api.supervisor import serve_processes

        raise typer.Exit(serve_processes(settings, run_worker=run_worker, say=say_rich))
    say_rich(f"vidgate listening on {settings.base_url}  (data: {settings.data_dir.resolve()})")
    run_uvicorn(
        create_app(settings, run_worker=run_worker),
        host=settings.host,
        port=settings.port,
        **uvicorn_options(settings),
    )


async def _any_active_key(settings: Settings) -> bool:
    from vidgate.store import db
    from vidgate.store.keys import KeyStore

    engine = db.create_engine(settings.resolved_database_url)
    try:
        return any(key.active for key in await KeyStore(engine).list())
    finally:
        await engine.dispose()


def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve GET /metrics on this port (VIDGATE_WORKER__METRICS_PORT).")
    ] = None,
) -> None:
    """Run a worker on its own: claim due tasks and drive them to the end.

    The first SIGINT or SIGTERM stops gracefully (running steps get their grace period); a second one
    stops at once: running steps are stopped and their tasks released."""
    import signal

    import anyio

    from vidgate.logs import configure_logging
    from vidgate.runtime import open_runtime
    from vidgate.worker.metrics_server import serve_worker_metrics
    from vidgate.worker.service import run_worker_services

    settings = load_settings()
    configure_logging(settings)
    port = settings.worker.metrics_port if metrics_port is None else metrics_port

    async def main() -> None:
        stop, force = anyio.Event(), anyio.Event()
        async with open_runtime(settings) as runtime, anyio.create_task_group() as tg:
            if port is not None:
                await tg.start(serve_worker_metrics, runtime, port)

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:  # kept open: a third Ctrl-C must not interrupt the releases
                        (force if stop.is_set() else stop).set()

            tg.start_soon(on_signals)
            await run_worker_services(runtime, stop, force)
            tg.cancel_scope.cancel()

    run_or_exit(main)
