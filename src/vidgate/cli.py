"""The `vidgate` command: serve, worker, db, keys, channels, dev."""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console

from vidgate.cli_admin import admin_app
from vidgate.cli_channels import channels_app
from vidgate.cli_key_options import (
    LIMIT_OPTIONS,
    AllowedModel,
    CreatesPerMinute,
    MaxActiveTasks,
    RequestsPerMinute,
    credits_option,
    key_limits,
)
from vidgate.cli_models import models_app
from vidgate.cli_table import print_rows
from vidgate.cli_video import video_app
from vidgate.config import Settings
from vidgate.money import format_credits
from vidgate.store.keys import KeyStore

T = TypeVar("T")

app = typer.Typer(help="vidgate: a self-hosted video-generation gateway.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
dev_app = typer.Typer(help="Tools for development and sandboxes.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(channels_app, name="channels")
app.add_typer(dev_app, name="dev")
app.add_typer(video_app, name="video")
app.add_typer(admin_app, name="admin")
app.add_typer(models_app, name="models")
err = Console(stderr=True)


def load_settings(**overrides: Any) -> Settings:
    """The settings, with every channel checked against its kind; a problem exits 2 with one line."""
    from vidgate.providers.registry import ChannelConfigError, check_channels

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        check_channels(settings)
    except (ValueError, ChannelConfigError) as exc:  # a bad setting: say which, without a traceback
        err.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    return settings


def run_or_exit(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; an out-of-date schema is a message and exit 1, not a traceback."""
    from vidgate.runtime import SchemaOutOfDate

    try:
        return anyio.run(fn)
    except SchemaOutOfDate as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@app.command()
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
    from vidgate.api.app import create_app
    from vidgate.api.http_server import uvicorn_options
    from vidgate.api.signals import run_uvicorn
    from vidgate.logs import configure_logging
    from vidgate.runtime import SchemaOutOfDate, prepare_database

    settings = load_settings(host=host, port=port, http_workers=workers)
    configure_logging(settings)
    try:
        anyio.run(prepare_database, settings)
    except SchemaOutOfDate as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if not anyio.run(_any_active_key, settings):
        err.print("no API key yet: create one with  vidgate keys create --name NAME")
    run_worker = worker and settings.embedded_worker
    if settings.http_workers > 1:
        from vidgate.api.supervisor import serve_processes

        raise typer.Exit(serve_processes(settings, run_worker=run_worker, say=err.print))
    err.print(f"vidgate listening on {settings.base_url}  (data: {settings.data_dir.resolve()})")
    run_uvicorn(
        create_app(settings, run_worker=run_worker),
        host=settings.host,
        port=settings.port,
        **uvicorn_options(settings),
    )


async def _any_active_key(settings: Settings) -> bool:
    from vidgate.store import db

    engine = db.create_engine(settings.resolved_database_url)
    try:
        return any(key.active for key in await KeyStore(engine).list())
    finally:
        await engine.dispose()


@app.command("worker")
def run_worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve GET /metrics on this port (VIDGATE_WORKER__METRICS_PORT).")
    ] = None,
) -> None:
    """Run a worker on its own: claim due tasks and drive them to the end.

    The first SIGINT or SIGTERM stops gracefully (running steps get their grace period); a second one
    stops at once: running steps are stopped and their tasks released."""
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


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Bring the database schema up to date (idempotent)."""
    from vidgate.store import db

    settings = load_settings()
    db.upgrade_sync(settings.resolved_database_url, revision)
    err.print(f"database at revision {revision}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    from vidgate.store import db

    settings = load_settings()

    async def current() -> str | None:
        engine = db.create_engine(settings.resolved_database_url)
        try:
            return await db.current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(f"current: {anyio.run(current) or 'none'}\nhead: {db.head_revision()}")


def _with_keys(action: Callable[[KeyStore, int], Awaitable[T]]) -> T:
    """Run `action(keystore, now)` against the configured database (schema prepared first)."""
    from vidgate.clock import SystemClock
    from vidgate.runtime import prepare_database
    from vidgate.store import db

    settings = load_settings()

    async def main() -> T:
        await prepare_database(settings)
        engine = db.create_engine(settings.resolved_database_url)
        try:
            return await action(KeyStore(engine), SystemClock().now_ms())
        finally:
            await engine.dispose()

    return run_or_exit(main)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")],
    admin: Annotated[bool, typer.Option("--admin", help="May use admin routes.")] = False,
    balance: Annotated[
        str | None,
        typer.Option(help="Credits it starts with (e.g. 10 or 2.5); tasks are held and charged against it."),
    ] = None,
    unlimited: Annotated[
        bool, typer.Option("--unlimited", help="Keep no balance (the default without --balance).")
    ] = False,
    allowed_models: AllowedModel = None,
    requests_per_minute: RequestsPerMinute = None,
    creates_per_minute: CreatesPerMinute = None,
    max_active_tasks: MaxActiveTasks = None,
) -> None:
    """Create a key. The key is printed once, as the last line of stdout; only its hash is kept."""
    if balance is not None and unlimited:
        raise typer.BadParameter("give --balance or --unlimited, not both", param_hint="--balance")
    micros = None if balance is None else credits_option(balance, "--balance")
    if micros is not None and micros < 0:
        raise typer.BadParameter("a balance cannot be negative", param_hint="--balance")
    limits = key_limits(
        requests_per_minute=requests_per_minute,
        creates_per_minute=creates_per_minute,
        max_active_tasks=max_active_tasks,
    )
    record, plaintext = _with_keys(
        lambda keys, now: keys.create(
            name=name,
            is_admin=admin,
            now=now,
            limits=limits,
            balance=micros,
            allowed_models=allowed_models or None,
        )
    )
    err.print(
        f"created key {record.id} ({record.name}{', admin' if admin else ''}, "
        f"balance {format_credits(record.balance)}); store it now, it is not shown again:"
    )
    typer.echo(plaintext)


@keys_app.command("topup")
def keys_topup(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `vidgate keys list`).")],
    amount: Annotated[str, typer.Argument(help="Credits to add (e.g. 10 or 2.5).")],
    note: Annotated[str | None, typer.Option(help="Why (kept with the ledger entry).")] = None,
    reference: Annotated[
        str | None,
        typer.Option(help="An idempotency key: running the command again with it adds nothing more."),
    ] = None,
) -> None:
    """Add credits to a key's balance (a `topup` ledger entry); prints the balance after."""
    micros = credits_option(amount, "AMOUNT")
    if micros <= 0:
        raise typer.BadParameter("a top-up must be more than 0 credits", param_hint="AMOUNT")
    _change_balance(
        key_id, lambda keys, now: keys.topup(key_id, micros, now=now, reference=reference, note=note)
    )


# ignore_unknown_options: a negative AMOUNT ("-1.5") is an argument, not an unknown option.
@keys_app.command("adjust", context_settings={"ignore_unknown_options": True})
def keys_adjust(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `vidgate keys list`).")],
    amount: Annotated[str, typer.Argument(help="Credits to add, or take away with a minus (-1.5).")],
    note: Annotated[str, typer.Option(help="Why: required, kept with the ledger entry.")],
    reference: Annotated[str | None, typer.Option(help="An idempotency key, as for topup.")] = None,
) -> None:
    """Correct a key's balance with an `adjust` ledger entry (entries are never edited)."""
    micros = credits_option(amount, "AMOUNT")
    _change_balance(
        key_id, lambda keys, now: keys.adjust(key_id, micros, now=now, note=note, reference=reference)
    )


def _change_balance(key_id: str, change: Callable[[KeyStore, int], Awaitable[Any]]) -> None:
    from vidgate.errors import Conflict, InvalidRequest

    try:
        record = _with_keys(change)
    except (Conflict, InvalidRequest, ValueError) as exc:  # e.g. past the cap on a balance
        err.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from exc
    if record is None:
        err.print(f"[red]no key with id {key_id}[/red]")
        raise typer.Exit(1)
    err.print(
        f"{record.id}: balance {format_credits(record.balance)}, available {format_credits(record.available)}"
    )


@keys_app.command("list")
def keys_list() -> None:
    """List keys (hints only: the keys themselves are never stored). Tab-separated when piped."""
    records = _with_keys(lambda keys, now: keys.list())

    def when(ms: int | None) -> str:
        return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")

    header = ("id", "name", "hint", "admin", "balance", "held", "created", "revoked")
    rows = [
        (
            r.id,
            r.name,
            r.key_hint,
            "yes" if r.is_admin else "",
            format_credits(r.balance),
            format_credits(r.held),
            when(r.created_at),
            when(r.revoked_at),
        )
        for r in records
    ]
    print_rows(header, rows)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `vidgate keys list`).")],
) -> None:
    """Revoke a key; requests with it get 401 once running servers' key caches expire (5 s by default)."""
    if not _with_keys(lambda keys, now: keys.revoke(key_id, now=now)):
        err.print(f"[red]no active key with id {key_id}[/red]")
        raise typer.Exit(1)
    seconds = load_settings().key_cache_seconds
    err.print(f"revoked {key_id}; running servers refuse it within {seconds:g} s (their key cache)")


@keys_app.command("limits")
def keys_limits(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `vidgate keys list`).")],
    requests_per_minute: RequestsPerMinute = None,
    creates_per_minute: CreatesPerMinute = None,
    max_active_tasks: MaxActiveTasks = None,
) -> None:
    """Show a key's limits, or change those given. API processes apply a change within seconds
    (when their cached copy of the key expires); tasks already running are never stopped."""
    changes = key_limits(
        requests_per_minute=requests_per_minute,
        creates_per_minute=creates_per_minute,
        max_active_tasks=max_active_tasks,
    )
    settings = load_settings()
    record = _with_keys(lambda keys, now: keys.set_limits(key_id, changes))
    if record is None:
        err.print(f"[red]no key with id {key_id}[/red]")
        raise typer.Exit(1)

    def shown(own: int | None, default: int | None) -> tuple[str, str]:
        in_effect = default if own is None else own or None
        return ("default" if own is None else "unlimited" if own == 0 else str(own)), (
            "unlimited" if in_effect is None else str(in_effect)
        )

    rows = [(field, *shown(getattr(record, field), getattr(settings, field))) for field in LIMIT_OPTIONS]
    print_rows(("limit", "this key", "in effect"), rows)


@dev_app.command("fake-upstream")
def dev_fake_upstream(
    port: Annotated[int, typer.Option(help="Listen port.")] = 9000,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    api_key: Annotated[str | None, typer.Option(help="Require this bearer key (default: any).")] = None,
    ready: Annotated[float, typer.Option(help="Seconds until a job completes.")] = 5.0,
    queue: Annotated[float, typer.Option(help="Seconds a job stays queued first.")] = 0.0,
    poll_after_ms: Annotated[int, typer.Option(help="The openai-poll-after-ms it suggests.")] = 1000,
    cdn_base_url: Annotated[str | None, typer.Option(help="Base of result links (unified dialect).")] = None,
    hang: Annotated[float, typer.Option(help="Seconds #accept_then_hang / #poll_hang hold an answer.")] = 30,
) -> None:
    """Serve the fake upstream (every dialect, faults chosen per request) for sandboxes and tests.

    Point a channel at http://HOST:PORT/v1 (kind openai or unified), http://HOST:PORT/v1beta (veo),
    http://HOST:PORT/api/v3 (seedance) or http://HOST:PORT/api/v1 (dashscope); write directives such as
    `#ready=30 #429=2 #accept_then_drop=1` in prompts (see vidgate.testing.fake_upstream).
    """
    from vidgate.testing.fake_upstream import serve_fake_upstream

    err.print(f"fake upstream on http://{host}:{port}/v1 (journal: /_fake/journal)")
    kwargs: dict[str, Any] = {
        "api_key": api_key,
        "ready_seconds": ready,
        "queue_seconds": queue,
        "poll_after_ms": poll_after_ms,
        "cdn_base_url": cdn_base_url,
        "hang_seconds": hang,
    }

    async def main() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: serve_fake_upstream(host, port, **kwargs))
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

    anyio.run(main)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
