"""`vidgate dev ...`: tools for development and sandboxes (the fake upstream, imported when it runs)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vidgate.cli.output import say_rich

dev_app = typer.Typer(help="Tools for development and sandboxes.", no_args_is_help=True)


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

    Point a channel at http://HOST:PORT/v1 (kind openai, unified or replicate), http://HOST:PORT/v1beta
    (veo), http://HOST:PORT/api/v3 (seedance), http://HOST:PORT/api/v1 (dashscope or openrouter),
    http://HOST:PORT/fal (fal) or http://HOST:PORT itself (kling, minimax; for kling, --api-key is the
    secret key its tokens are signed with); write directives such as `#ready=30 #429=2
    #accept_then_drop=1` in prompts (see vidgate.testing.fake_upstream).
    """
    import signal

    import anyio

    from vidgate.testing.fake_upstream import serve_fake_upstream

    say_rich(f"fake upstream on http://{host}:{port}/v1 (journal: /_fake/journal)")
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
