"""The root `vidgate` app: it imports every command group and mounts it; no group imports it back.

    serve, worker     cli/serve.py        the gateway's processes (local)
    db                cli/db.py           the database schema (local)
    keys              cli/keys.py         API keys, straight on the database (local)
    channels          cli/channels.py     the configured channels, and a probe of each (local)
    dev               cli/dev.py          the fake upstream (local)
    video             cli/video.py        videos on a server, through the SDK (client)
    models            cli/models.py       a server's models (client); `models check DIR` (local)
    admin             cli/admin.py        the admin API: tasks, usage, channels (client)
    admin keys        cli/admin_keys.py   API keys over the admin API (client)

What they share: cli/output.py (tables, JSON, messages, exit codes), cli/values.py (durations, times,
credits typed on the command line), cli/key_options.py (the options and wording of a key, for `keys` and
`admin keys`), cli/connection.py (the client commands' connection and SDK client), cli/local.py (the local
commands' settings), cli/wait_display.py (the progress display of `video create --wait`).

Importing this module imports typer and the CLI's own modules, nothing more: every command imports what
it needs when it runs (SQLAlchemy, FastAPI, the runtime for the local commands; the SDK, httpx and
pydantic for the client commands), so that `vidgate --help` and `vidgate video get ID` start at once.
tests/unit/cli/test_cli_imports.py keeps it so.
"""

from __future__ import annotations

import typer

from vidgate.cli.admin import admin_app
from vidgate.cli.channels import channels_app
from vidgate.cli.db import db_app
from vidgate.cli.dev import dev_app
from vidgate.cli.keys import keys_app
from vidgate.cli.models import models_app
from vidgate.cli.serve import serve, worker
from vidgate.cli.video import video_app

app = typer.Typer(help="vidgate: a self-hosted video-generation gateway.", no_args_is_help=True)
app.command("serve")(serve)
app.command("worker")(worker)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(channels_app, name="channels")
app.add_typer(dev_app, name="dev")
app.add_typer(video_app, name="video")
app.add_typer(admin_app, name="admin")
app.add_typer(models_app, name="models")


def main() -> None:
    app()
