"""What the client commands (`vidgate video ...`, `vidgate models list|show`, `vidgate admin ...`) share:
the connection options, the SDK client they open, and API errors turned into one line and an exit code.

These commands talk to a running vidgate over HTTP through `vidgate.client` (the SDK), never to the
database: they work from any machine that can reach the server. The SDK is imported when a command opens
its client, so that `vidgate --help` and the local commands do not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidgate.cli.output import EXIT_INTERRUPTED, EXIT_USAGE, fail, print_json, say

if TYPE_CHECKING:
    from vidgate.client import Client

CONNECTION = "Connection"
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="VIDGATE_BASE_URL",
        show_envvar=True,
        help="The vidgate server (default http://127.0.0.1:8000).",
        rich_help_panel=CONNECTION,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="VIDGATE_API_KEY",
        show_envvar=True,
        show_default=False,
        help="The API key (prefer the environment variable: a flag shows in `ps` and shell history).",
        rich_help_panel=CONNECTION,
    ),
]
RotateOption = Annotated[
    bool, typer.Option("--rotate", help="Replace it first: the old one signs nothing more.")
]


@dataclass(frozen=True)
class Connection:
    base_url: str | None
    key: str | None


@contextmanager
def open_client(conn: Connection, *, flags: Mapping[str, str] | None = None) -> Iterator[Client]:
    """An SDK client for `conn`; every SDK error inside the block becomes one line and exit 1.
    `flags` names the command's option for an API field (`seconds` -> `--duration`), so that an error
    about a field points at what the user typed."""
    from vidgate.client import Client

    if not conn.key:
        fail("no API key: set VIDGATE_API_KEY or pass --key", EXIT_USAGE)
    with api_errors(conn, flags), Client(base_url=conn.base_url, api_key=conn.key) as client:
        yield client


@contextmanager
def api_errors(conn: Connection, flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """`error: <message> (<code>, <param>)` on stderr and exit 1 for an error answer; the same for a
    server that cannot be reached. A 400 from the server stays 1 (it is the server's verdict on values
    the CLI let through, e.g. a duration no channel offers); 2 is kept for what the CLI itself refuses."""
    from vidgate.client import APIConnectionError, APIStatusError, VidgateError, WaitTimeout

    try:
        yield
    except APIStatusError as exc:
        fail(describe_status_error(exc, flags))
    except APIConnectionError as exc:
        fail(f"cannot reach the server at {conn.base_url or 'http://127.0.0.1:8000'}: {exc}")
    except WaitTimeout:
        raise  # the wait commands handle it (exit 3); never reached for other commands
    except VidgateError as exc:
        fail(str(exc))
    except KeyboardInterrupt:  # Ctrl-C outside a wait (which says more): no traceback, no "Aborted!"
        say("\ninterrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def describe_status_error(exc: Any, flags: Mapping[str, str] | None = None) -> str:
    """`<message> (<code>, <param>)`, leaving out what the server did not say; `param` as the option
    in `flags` when there is one (`images[1]` -> `--image #2`)."""
    message = getattr(exc, "message", None) or str(exc)
    param = getattr(exc, "param", None)
    if param and flags:
        field, _, index = str(param).partition("[")
        if field in flags:
            position = index.rstrip("]")
            param = flags[field] + (f" #{int(position) + 1}" if position.isdigit() else "")
    details = [str(v) for v in (getattr(exc, "code", None), param) if v]
    if not details:
        details = [f"HTTP {getattr(exc, 'status_code', '?')}"]
    return f"{message} ({', '.join(details)})"


def show_webhook_secret(secret: Any, *, rotated: bool, json_output: bool) -> None:
    """A key's webhook secret (the SDK's WebhookSecret) on stdout, alone (or as JSON), for a script."""
    if json_output:
        print_json(dump(secret))
        return
    say(f"{'new ' if rotated else ''}webhook secret of {secret.key_id}:")
    typer.echo(secret.secret)


def dump(model: Any) -> dict[str, Any]:
    """A pydantic model of the SDK as plain JSON data (extra fields the server sent included)."""
    data: dict[str, Any] = model.model_dump(mode="json")
    return data


def fetch_pages(fetch: Callable[[Any], Any], *, every: bool) -> tuple[list[dict[str, Any]], bool, Any]:
    """Call `fetch(after)` page after page (only the first unless `every`): (every item as JSON data,
    has_more, last_id). A page is what the SDK returns for a list: a page object or a plain list."""
    items: list[dict[str, Any]] = []
    after: Any = None
    while True:
        page = fetch(after)
        data, has_more, last_id = (
            (page, False, None)
            if isinstance(page, list)
            else (list(page.data), bool(page.has_more), page.last_id)
        )
        items.extend(dump(item) for item in data)
        if not (every and has_more and last_id is not None):
            return items, has_more, last_id
        after = last_id
