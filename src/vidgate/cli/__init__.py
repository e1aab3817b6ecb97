"""The `vidgate` command line: one module per command group, mounted by the root app in cli/root.py (its
docstring is the map). `app` and `main` are re-exported for `from vidgate.cli import app` (tests); the
console script and `python -m vidgate` name cli/root.py itself."""

from vidgate.cli.root import app, main

__all__ = ["app", "main"]
