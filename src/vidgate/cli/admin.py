"""`vidgate admin tasks|usage|channels` and `vidgate admin keys ...` (cli/admin_keys.py): the admin API
(/v1/admin) from the command line, through the SDK, with an admin key.

Unlike the local `vidgate keys ...` commands (which open the database), these work against any running
server. Credits are read and shown as decimals (vidgate.money); the API carries micro-credits. A key that
is not an admin gets the server's 404, shown as any API error is (exit 1).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from vidgate.cli.admin_keys import keys_app
from vidgate.cli.connection import BaseUrlOption, Connection, KeyOption, dump, fetch_pages, open_client
from vidgate.cli.output import (
    JsonOption,
    format_time,
    more_hint,
    print_fields,
    print_json,
    print_list_json,
    print_table,
    say,
    stdout_is_terminal,
)
from vidgate.cli.values import parse_time
from vidgate.money import format_credits

admin_app = typer.Typer(
    help="The admin API of a vidgate server (needs an admin key): keys, balances, tasks, usage, channels.",
    no_args_is_help=True,
)
admin_app.add_typer(keys_app, name="keys")

# A task's credits are settled when it ends: captured out of its hold if it completed, released if not.
_RUNNING = ("pending", "processing")


def task_credits(task: Mapping[str, Any]) -> str:
    """What a task (the admin API's object) costs, in credits: `≤hold` while it runs (at most what its
    create held); once it has ended, what was captured (the channel's price, never more than the hold) if
    it completed, `0 (released)` if it failed or was cancelled (a timeout is a failure); `` when its
    create held nothing (a free model)."""
    hold, charge = task.get("hold_amount"), task.get("charge_amount")
    if not hold:
        return ""
    status = task.get("status")
    if status in _RUNNING:
        return f"≤{format_credits(hold)}"
    if status == "completed":
        return format_credits(hold if charge is None else min(hold, charge))
    return "0 (released)"


class TaskStatus(enum.StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class Interval(enum.StrEnum):
    none = "none"
    day = "day"
    hour = "hour"


SinceOption = Annotated[
    str | None,
    typer.Option(
        help="From this time: Unix seconds, an ISO date/time (UTC unless given), or an age (24h, 7d)."
    ),
]
UntilOption = Annotated[str | None, typer.Option(help="Before this time (same forms as --since).")]


@admin_app.command("tasks")
def admin_tasks(
    task_id: Annotated[
        str | None,
        typer.Argument(help="One task (any id form): shown with every upstream create it sent."),
    ] = None,
    status: Annotated[TaskStatus | None, typer.Option(help="Only tasks in this status.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only tasks that went to this channel.")] = None,
    model: Annotated[str | None, typer.Option(help="Only tasks of this model.")] = None,
    key_id: Annotated[str | None, typer.Option(help="Only this key's tasks.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    after: Annotated[str | None, typer.Option(help="Start after this task id (the last of a page).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Tasks per page.")] = 20,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Every key's tasks, newest first (deleted ones too, marked), with channel, credits and error; or
    one task (TASK_ID) with every create sent upstream for it."""
    if task_id is not None:
        with open_client(Connection(base_url, key)) as client:
            task = client.admin.task(task_id).model_dump(mode="json")
        _show_task(task, json_output)
        return
    created_after = None if since is None else parse_time(since, option="--since")
    created_before = None if until is None else parse_time(until, option="--until")
    start = after
    with open_client(Connection(base_url, key)) as client:
        items, has_more, last_id = fetch_pages(
            lambda cursor: client.admin.tasks(
                status=None if status is None else status.value,
                channel=channel,
                model=model,
                key_id=key_id,
                created_after=created_after,
                created_before=created_before,
                after=start if cursor is None else cursor,
                limit=limit,
            ),
            every=all_pages,
        )
    if json_output:
        print_list_json(items, has_more=has_more, last_id=last_id)
        return

    rows = [
        (
            str(t["id"]) + (" (deleted)" if t.get("deleted") else ""),
            format_time(t.get("created_at")),
            str(t.get("key_name") or t.get("key_id") or ""),
            str(t.get("model") or ""),
            t["status"] + (f" {t.get('progress', 0)}%" if t["status"] == "processing" else ""),
            str(t.get("channel") or ""),
            f"{t.get('size') or ''} {t.get('seconds') or ''}s",
            task_credits(t),
            "" if not t.get("error") else f"{t['error'].get('code')}: {t['error'].get('message')}",
        )
        for t in items
    ]
    print_table(("id", "created", "key", "model", "status", "channel", "size", "credits", "error"), rows)
    more_hint(has_more, "vidgate admin tasks", last_id)


def _show_task(task: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(task)
        return
    error = task.get("error")
    print_fields(
        [
            ("id", str(task["id"]) + (" (deleted)" if task.get("deleted") else "")),
            ("video id", str(task.get("video_id") or "")),
            ("key", f"{task.get('key_name') or ''} ({task.get('key_id') or ''})"),
            ("model", str(task.get("model") or "")),
            ("status", str(task["status"])),
            ("channel", str(task.get("channel") or "")),
            ("created", format_time(task.get("created_at"))),
            ("completed", format_time(task.get("completed_at"))),
            ("credits", task_credits(task)),
            ("error", f"{error['code']}: {error['message']}" if error else ""),
        ]
    )
    rows = [
        (
            str(a["number"]),
            format_time(a.get("sent_at")),
            str(a["channel"]),
            str(a.get("idempotency_key") or ""),
            str(a["outcome"]),
            str(a.get("upstream_id") or ""),
            "" if not a.get("error") else f"{a['error'].get('code')}: {a['error'].get('message')}",
        )
        for a in task.get("attempts", [])
    ]
    print()
    print_table(("#", "sent", "channel", "idempotency key", "outcome", "upstream job", "error"), rows)


@admin_app.command("usage")
def admin_usage(
    since: SinceOption = None,
    until: UntilOption = None,
    key_id: Annotated[str | None, typer.Option(help="Only this key.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    interval: Annotated[
        Interval | None, typer.Option(help="One row per key and model (none), or per day or hour.")
    ] = None,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Tasks and credits per key and model over a period (default: the last 30 days), by creation time."""
    start = None if since is None else parse_time(since, option="--since")
    end = None if until is None else parse_time(until, option="--until")
    with open_client(Connection(base_url, key)) as client:
        usage = dump(
            client.admin.usage(
                start=start,
                end=end,
                key_id=key_id,
                model=model,
                interval=None if interval is None else interval.value,
            )
        )
    if json_output:
        print_json(usage)
        return
    if stdout_is_terminal():
        say(f"from {format_time(usage.get('start'))} to {format_time(usage.get('end'))} UTC")
    rows = [
        (
            format_time(r.get("period_start")),
            f"{r.get('key_name') or ''} ({r.get('key_id')})",
            str(r.get("model") or ""),
            str(r.get("tasks", 0)),
            str(r.get("completed", 0)),
            str(r.get("failed", 0)),
            str(r.get("cancelled", 0)),
            str(r.get("seconds_completed", 0)),
            format_credits(r.get("credits_charged") or 0),
            format_credits(r.get("credits_refunded") or 0),
        )
        for r in usage.get("data", [])
    ]
    header = (
        "period",
        "key",
        "model",
        "tasks",
        "completed",
        "failed",
        "cancelled",
        "seconds",
        "charged",
        "refunded",
    )
    print_table(header, rows)


@admin_app.command("channels")
def admin_channels(
    json_output: JsonOption = False, base_url: BaseUrlOption = None, key: KeyOption = None
) -> None:
    """The server's channels: models, load, circuit state, the last hour's error rate."""
    with open_client(Connection(base_url, key)) as client:
        result = client.admin.channels()
        channels = [dump(c) for c in (result if isinstance(result, list) else result.data)]
    if json_output:
        print_json({"object": "list", "data": channels})
        return

    def circuit(c: dict[str, Any]) -> str:
        state = c.get("circuit") or {}
        failures = state.get("failures") or 0
        return str(state.get("state", "")) + (f" ({failures} failures)" if failures else "")

    def recent(c: dict[str, Any]) -> str:
        r = c.get("recent") or {}
        rate = r.get("error_rate")
        shown = "" if rate is None else f", {rate:.0%} errors"
        return f"{r.get('completed', 0)} ok, {r.get('failed', 0)} failed{shown}"

    rows = [
        (
            c["name"] + ("" if c.get("enabled", True) else " (disabled)"),
            str(c.get("kind", "")),
            ", ".join(c.get("models") or []),
            str(c.get("priority", "")),
            f"{c.get('in_flight', 0)}"
            + ("" if c.get("max_concurrent") is None else f"/{c['max_concurrent']}"),
            circuit(c),
            recent(c),
        )
        for c in channels
    ]
    print_table(("name", "kind", "models", "priority", "load", "circuit", "last hour"), rows)
