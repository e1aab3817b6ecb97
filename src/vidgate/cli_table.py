"""Tables on the command line: a rich table on a terminal, tab-separated lines when piped."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.table import Table


def print_rows(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    if not sys.stdout.isatty():
        for row in (header, *rows):
            typer.echo("\t".join(row))
        return
    table = Table(*header)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
