"""How every command prints: results on stdout (a table, `field value` rows or JSON), messages for people
on stderr, and the exit codes. The one definition of the output formats, used by the local commands
(`vidgate keys`, `channels`, ...) and the client commands (`vidgate video`, `admin`, ...) alike:

- a table is a rich table on a terminal and tab-separated lines (a header line first) when piped;
- one record is `field<TAB>value` rows, as a two-column table;
- `--json` (JsonOption) is one JSON object on one line; a list is `{"object": "list", "data", "has_more",
  "last_id"}`, as the API sends it.

rich is imported only when a table is drawn on a terminal: a piped command does not pay for it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer

# Exit codes (docs/cli.md). 2 is also what click uses for a usage error.
EXIT_OK = 0
EXIT_FAILED = 1  # the task failed or was cancelled, the server answered an error, a local check failed
EXIT_USAGE = 2
EXIT_TIMEOUT = 3  # --timeout passed while the task was still running (it goes on)
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting: detached, the task goes on (128 + SIGINT, as shells do)

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON (one object; JSON Lines while waiting) instead of text."),
]


def say(message: str) -> None:
    """A line for the person at the terminal: stderr, so that stdout stays the command's result."""
    typer.echo(message, err=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """`error: <message>` on stderr, then exit with `code`."""
    say(f"error: {message}")
    raise typer.Exit(code)


def say_rich(message: str) -> None:
    """A line on stderr with rich markup (`[red]...[/red]`), as the local commands word their errors."""
    from rich.console import Console

    Console(stderr=True).print(message)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(value: Any) -> None:
    """One JSON object on one line of stdout (flushed: a reader of JSON Lines sees it at once). A reader
    that has gone (`... --wait | head -1`) ends the command quietly, as a closed pipe ends `cat`."""
    try:
        typer.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise typer.Exit(EXIT_FAILED) from None


def print_list_json(items: list[dict[str, Any]], *, has_more: bool = False, last_id: Any = None) -> None:
    """A list as the API sends one: `{"object": "list", "data", "has_more", "last_id"}`."""
    print_json({"object": "list", "data": items, "has_more": has_more, "last_id": last_id})


def print_table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, whole: tuple[int, ...] = (0,)
) -> None:
    """Rows under `header`: tab-separated lines when stdout is piped (header first, so `cut -f1` and
    `awk -F'\\t'` work); a rich table on a terminal, where the columns in `whole` (ids, which people copy)
    are never cut or wrapped: the others give way."""
    if not stdout_is_terminal():
        for row in (header, *rows):
            typer.echo("\t".join(row))
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
    print_table(("field", "value"), fields)


def more_hint(has_more: bool, command: str, last_id: Any) -> None:
    """On a terminal, after the first page of a longer list: the command that fetches the next one."""
    if has_more and stdout_is_terminal():
        say(f"more: {command} --after {last_id}  (or --all)")


def format_time(seconds: int | float | None) -> str:
    """Unix seconds as 'YYYY-MM-DD HH:MM:SS' in UTC; '' for None."""
    if seconds is None:
        return ""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float) -> str:
    """5400 -> '1h30m'; 90 -> '1m30s'; 2.5 -> '2.5s'."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{u}" for n, u in parts if n)
