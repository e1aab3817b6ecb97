"""What the local commands (`vidgate serve`, `worker`, `db`, `keys`, `channels`) share: the settings,
checked, and a way to run an async step that words an out-of-date schema instead of a traceback.

Everything heavy (the settings' pydantic models, the channel registry, the runtime, SQLAlchemy) is imported
inside the functions: a module of the CLI is imported for `vidgate --help` and for every client command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from vidgate.cli.output import say_rich

if TYPE_CHECKING:
    from vidgate.config import Settings

T = TypeVar("T")


def load_settings(*, check_channels: bool = True, **overrides: Any) -> Settings:
    """The settings, with every channel checked against its kind; a problem exits 2 with one line.

    `check_channels=False` for the commands that touch only the database (keys, the schema): a channel
    file half-way through an edit does not lock an operator out of them, and they start without
    importing every channel's adapter."""
    from vidgate.config import Settings

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        if check_channels:
            from vidgate.providers.registry import check_channels as check

            check(settings)
    except ValueError as exc:  # a bad setting or channel (ChannelConfigError): say which, no traceback
        say_rich(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    return settings


def run_or_exit(fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; an out-of-date schema is a message and exit 1, not a traceback."""
    import anyio

    from vidgate.store.schema import SchemaOutOfDate

    try:
        return anyio.run(fn)
    except SchemaOutOfDate as exc:
        say_rich(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
