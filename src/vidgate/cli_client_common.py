"""What the client commands (`vidgate video ...`, `vidgate admin ...`) share: the connection options, the
SDK client they open, API errors turned into one line and an exit code, JSON output, and the parsing of
durations and times given on the command line.

These commands talk to a running vidgate over HTTP through `vidgate.client` (the SDK), never to the
database: they work from any machine that can reach the server. The SDK is imported lazily, so that
`vidgate serve` and the other local commands do not pay for it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from vidgate.client import Client

# Exit codes of the client commands (docs/cli.md). 2 is also what click uses for a usage error.
EXIT_OK = 0
EXIT_FAILED = 1  # the task failed or was cancelled, or the server answered an error
EXIT_USAGE = 2
EXIT_TIMEOUT = 3  # --timeout passed while the task was still running (it goes on)
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting: detached, the task goes on (128 + SIGINT, as shells do)

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
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON (one object; JSON Lines while waiting) instead of text."),
]

RotateOption = Annotated[
    bool, typer.Option("--rotate", help="Replace it first: the old one signs nothing more.")
]


@dataclass(frozen=True)
class Connection:
    base_url: str | None
    key: str | None


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def say(message: str) -> None:
    """A line for the person at the terminal: stderr, so that stdout stays the command's result."""
    typer.echo(message, err=True)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


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


def print_json(value: Any) -> None:
    """One JSON object on one line of stdout (flushed: a reader of JSON Lines sees it at once). A reader
    that has gone (`... --wait | head -1`) ends the command quietly, as a closed pipe ends `cat`."""
    try:
        typer.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise typer.Exit(EXIT_FAILED) from None


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


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, *, option: str) -> float:
    """'90' or '90s' -> 90; '30m' -> 1800; '1h30m' -> 5400; '1.5h' -> 5400. Usage error otherwise."""
    word = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", word):
        seconds = float(word)
    elif word and _DURATION_PART.sub("", word) == "":
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(word))
    if seconds is None or seconds <= 0:
        raise typer.BadParameter(
            f"{text!r} is not a duration such as 90, 90s, 30m, 1h30m or 2h", param_hint=option
        )
    return seconds


def format_duration(seconds: float) -> str:
    """5400 -> '1h30m'; 90 -> '1m30s'; 2.5 -> '2.5s'."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{u}" for n, u in parts if n)


def parse_time(text: str, *, option: str, now: float | None = None) -> int:
    """A point in time as Unix seconds: Unix seconds ('1764000000'), an ISO date or date-time
    ('2026-12-01', '2026-12-01T10:00', with an offset or in UTC when it has none), or an age ('24h', '7d',
    '90m': that long ago)."""
    word = text.strip()
    if re.fullmatch(r"\d{9,}", word):
        return int(word)
    if re.fullmatch(r"(\d+(?:\.\d+)?[smhd])+", word.lower()):
        base = dt.datetime.now(dt.UTC).timestamp() if now is None else now
        return int(base - parse_duration(word, option=option))
    try:
        moment = dt.datetime.fromisoformat(word)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: give Unix seconds, an ISO date such as 2026-12-01 or "
            "2026-12-01T10:00 (UTC unless an offset is given), or an age such as 24h or 7d",
            param_hint=option,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def format_time(seconds: int | float | None) -> str:
    """Unix seconds as 'YYYY-MM-DD HH:MM:SS' in UTC (as `vidgate keys list` shows times); '' for None."""
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, whole: tuple[int, ...] = (0,)
) -> None:
    """Rows as cli_table.print_rows shows them (tab-separated when piped), except that on a terminal the
    columns in `whole` (ids, which people copy) are never cut or wrapped: the others give way."""
    if not stdout_is_terminal():
        from vidgate.cli_table import print_rows

        print_rows(header, rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for i, name in enumerate(header):
        table.add_column(name, no_wrap=i in whole, min_width=len(name))
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def print_fields(fields: list[tuple[str, str]]) -> None:
    """One record as `field  value` rows: a table on a terminal, tab-separated when piped."""
    from vidgate.cli_table import print_rows

    print_rows(("field", "value"), fields)
