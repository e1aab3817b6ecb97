"""`vidgate admin ...`: the admin API (/v1/admin) from the command line, through the SDK, with an admin key.

Unlike the local `vidgate keys ...` commands (which open the database), these work against any running
server. Credits are read and shown as decimals (vidgate.money); the API carries micro-credits. A key that
is not an admin gets the server's 404, shown as any API error is (exit 1).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from vidgate.cli_client_common import (
    BaseUrlOption,
    Connection,
    JsonOption,
    KeyOption,
    RotateOption,
    dump,
    format_time,
    open_client,
    parse_time,
    print_fields,
    print_json,
    print_table,
    say,
    show_webhook_secret,
    stdout_is_terminal,
)
from vidgate.cli_key_options import (
    LIMIT_OPTIONS,
    AllowedModel,
    CreatesPerMinute,
    MaxActiveTasks,
    RequestsPerMinute,
    credits_option,
    key_limits,
)
from vidgate.money import format_credits

admin_app = typer.Typer(
    help="The admin API of a vidgate server (needs an admin key): keys, balances, tasks, usage, channels.",
    no_args_is_help=True,
)
keys_app = typer.Typer(
    help="API keys: create, list, limits, top up, ledger, webhook secrets, revoke.", no_args_is_help=True
)
admin_app.add_typer(keys_app, name="keys")

KeyId = Annotated[str, typer.Argument(help="The key's id (from `vidgate admin keys list`).")]


def _conn(base_url: str | None, key: str | None) -> Connection:
    return Connection(base_url=base_url, key=key)


def _limit_text(value: int | None) -> str:
    return "default" if value is None else "unlimited" if value == 0 else str(value)


def _models_text(models: Sequence[str] | None) -> str:
    return "all" if models is None else ", ".join(models) or "(none)"


def _key_fields(key: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("id", str(key["id"])),
        ("name", key["name"]),
        ("hint", key.get("hint") or ""),
        ("admin", "yes" if key.get("admin") else "no"),
        ("created", format_time(key.get("created_at"))),
        ("revoked", format_time(key.get("revoked_at")) or "no"),
        ("balance", format_credits(key.get("balance"))),
        ("held", format_credits(key.get("held") or 0)),
        ("available", format_credits(key.get("available"))),
        ("requests per minute", _limit_text(key.get("requests_per_minute"))),
        ("creates per minute", _limit_text(key.get("creates_per_minute"))),
        ("max active tasks", _limit_text(key.get("max_active_tasks"))),
        ("allowed models", _models_text(key.get("allowed_models"))),
    ]


def _show_key(key: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(key)
    else:
        print_fields(_key_fields(key))


def _page_items(page: Any) -> tuple[list[Any], bool, Any]:
    """(items, has_more, last_id) of what the SDK returns for a list: a page object or a plain list."""
    if isinstance(page, list):
        return page, False, None
    return list(page.data), bool(page.has_more), page.last_id


def _all_pages(fetch: Callable[[Any], Any], *, every: bool) -> tuple[list[dict[str, Any]], bool, Any]:
    """Call `fetch(after)` page after page (only the first unless `every`): every item as JSON data."""
    items: list[dict[str, Any]] = []
    after: Any = None
    while True:
        data, has_more, last_id = _page_items(fetch(after))
        items.extend(dump(item) for item in data)
        if not (every and has_more and last_id is not None):
            return items, has_more, last_id
        after = last_id


def _list_json(items: list[dict[str, Any]], has_more: bool, last_id: Any) -> None:
    print_json({"object": "list", "data": items, "has_more": has_more, "last_id": last_id})


def _more_hint(has_more: bool, command: str, last_id: Any) -> None:
    if has_more and stdout_is_terminal():
        say(f"more: {command} --after {last_id}  (or --all)")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key (who or what uses it).")],
    admin: Annotated[bool, typer.Option("--admin", help="May use the admin API.")] = False,
    balance: Annotated[
        str | None,
        typer.Option(help="Credits it starts with (e.g. 10 or 2.5); default: unlimited (no balance kept)."),
    ] = None,
    requests_per_minute: RequestsPerMinute = None,
    creates_per_minute: CreatesPerMinute = None,
    max_active_tasks: MaxActiveTasks = None,
    allowed_model: AllowedModel = None,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Create a key, printed once as the last line of stdout (--json: its `key` field)."""
    limits = key_limits(
        requests_per_minute=requests_per_minute,
        creates_per_minute=creates_per_minute,
        max_active_tasks=max_active_tasks,
    )
    micros = (
        None
        if balance is None or balance.strip().lower() == "unlimited"
        else credits_option(balance, "--balance")
    )
    if micros is not None and micros < 0:
        raise typer.BadParameter(f"{balance!r} is less than 0 credits", param_hint="--balance")
    with open_client(_conn(base_url, key)) as client:
        created = client.admin.keys.create(
            name, admin=admin, balance=micros, allowed_models=allowed_model or None, **limits
        )
    data = dump(created)
    if json_output:
        print_json(data)
        return
    say(
        f"created key {data['id']} ({data['name']}{', admin' if data.get('admin') else ''}, balance "
        f"{format_credits(data.get('balance'))}); store it now, it is not shown again:"
    )
    typer.echo(created.key)


@keys_app.command("list")
def keys_list(
    revoked: Annotated[bool, typer.Option("--revoked/--active", help="Include revoked keys.")] = True,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """List every key, oldest first (hints only: the keys themselves are never stored)."""
    with open_client(_conn(base_url, key)) as client:
        items, has_more, last_id = _all_pages(
            lambda cursor: client.admin.keys.list(include_revoked=revoked, after=cursor, limit=100),
            every=True,
        )
    if json_output:
        _list_json(items, has_more, last_id)
        return
    header = ("id", "name", "hint", "admin", "balance", "available", "models", "created", "revoked")
    rows = [
        (
            str(k["id"]),
            k["name"],
            k.get("hint") or "",
            "yes" if k.get("admin") else "",
            format_credits(k.get("balance")),
            format_credits(k.get("available")),
            _models_text(k.get("allowed_models")),
            format_time(k.get("created_at")),
            format_time(k.get("revoked_at")),
        )
        for k in items
    ]
    print_table(header, rows)


@keys_app.command("get")
def keys_get(
    key_id: KeyId, json_output: JsonOption = False, base_url: BaseUrlOption = None, key: KeyOption = None
) -> None:
    """Show one key: balance, held, available, limits, allowed models."""
    with open_client(_conn(base_url, key)) as client:
        record = dump(client.admin.keys.get(key_id))
    _show_key(record, json_output)


@keys_app.command("revoke")
def keys_revoke(
    key_id: KeyId, json_output: JsonOption = False, base_url: BaseUrlOption = None, key: KeyOption = None
) -> None:
    """Revoke a key (idempotent); servers refuse it once their key cache expires (5 s by default)."""
    with open_client(_conn(base_url, key)) as client:
        record = dump(client.admin.keys.revoke(key_id))
    if json_output:
        print_json(record)
    else:
        say(f"revoked {record['id']} ({record['name']}) at {format_time(record.get('revoked_at'))}")


@keys_app.command("topup")
def keys_topup(
    key_id: KeyId,
    amount: Annotated[str, typer.Argument(help="Credits to add (e.g. 10 or 2.5).")],
    note: Annotated[str | None, typer.Option(help="Kept with the ledger entry.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Repeat a top-up safely: the same key adds the amount once.")
    ] = None,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Add credits to a key's balance (a key with an unlimited balance refuses: 409 key_unlimited)."""
    micros = credits_option(amount, "AMOUNT")
    if micros <= 0:
        raise typer.BadParameter(f"{amount!r} is not more than 0 credits", param_hint="AMOUNT")
    with open_client(_conn(base_url, key)) as client:
        record = dump(client.admin.keys.topup(key_id, micros, note=note, idempotency_key=idempotency_key))
    if json_output:
        print_json(record)
        return
    say(f"added {format_credits(micros)} credits to {record['id']} ({record['name']})")
    print_fields(
        [
            ("balance", format_credits(record.get("balance"))),
            ("held", format_credits(record.get("held") or 0)),
            ("available", format_credits(record.get("available"))),
        ]
    )


@keys_app.command("webhook-secret")
def keys_webhook_secret(
    key_id: KeyId,
    rotate: RotateOption = False,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Print the secret that signs a key's webhooks (for its receiver: docs/api.md §6) on stdout."""
    with open_client(_conn(base_url, key)) as client:
        keys = client.admin.keys
        secret = keys.rotate_webhook_secret(key_id) if rotate else keys.webhook_secret(key_id)
    show_webhook_secret(secret, rotated=rotate, json_output=json_output)


@keys_app.command("limits")
def keys_limits(
    key_id: KeyId,
    requests_per_minute: RequestsPerMinute = None,
    creates_per_minute: CreatesPerMinute = None,
    max_active_tasks: MaxActiveTasks = None,
    allowed_model: AllowedModel = None,
    all_models: Annotated[
        bool, typer.Option("--all-models", help="Let the key use every model again.")
    ] = False,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Show a key's limits and allowed models, or change those given (the rest stay as they are)."""
    if allowed_model and all_models:
        raise typer.BadParameter("give --allowed-model or --all-models, not both", param_hint="--all-models")
    changes: dict[str, Any] = key_limits(
        requests_per_minute=requests_per_minute,
        creates_per_minute=creates_per_minute,
        max_active_tasks=max_active_tasks,
    )
    if allowed_model:
        changes["allowed_models"] = allowed_model
    elif all_models:
        changes["allowed_models"] = None
    with open_client(_conn(base_url, key)) as client:
        record = client.admin.keys.update(key_id, **changes) if changes else client.admin.keys.get(key_id)
        data = dump(record)
    if json_output:
        print_json(data)
        return
    print_fields(
        [(name.replace("_", " "), _limit_text(data.get(name))) for name in LIMIT_OPTIONS]
        + [("allowed models", _models_text(data.get("allowed_models")))]
    )


@keys_app.command("ledger")
def keys_ledger(
    key_id: KeyId,
    after: Annotated[int | None, typer.Option(help="Entries after this entry id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Entries per page.")] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """A key's ledger, oldest first: holds, captures, releases, top-ups and adjustments, in credits."""
    start = after
    with open_client(_conn(base_url, key)) as client:
        items, has_more, last_id = _all_pages(
            lambda cursor: client.admin.keys.ledger(
                key_id, after=start if cursor is None else cursor, limit=limit
            ),
            every=all_pages,
        )
    if json_output:
        _list_json(items, has_more, last_id)
        return
    rows = [
        (
            str(e["id"]),
            format_time(e.get("created_at")),
            e["kind"],
            format_credits(e["amount"]),
            e.get("task_id") or "",
            e.get("reference") or "",
            e.get("note") or "",
        )
        for e in items
    ]
    print_table(("id", "time", "kind", "credits", "task", "reference", "note"), rows)
    _more_hint(has_more, f"vidgate admin keys ledger {key_id}", last_id)


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
    """Every key's tasks, newest first (deleted ones too, marked), with channel, price and error; or
    one task (TASK_ID) with every create sent upstream for it."""
    if task_id is not None:
        with open_client(_conn(base_url, key)) as client:
            task = client.admin.task(task_id).model_dump(mode="json")
        _show_task(task, json_output)
        return
    created_after = None if since is None else parse_time(since, option="--since")
    created_before = None if until is None else parse_time(until, option="--until")
    start = after
    with open_client(_conn(base_url, key)) as client:
        items, has_more, last_id = _all_pages(
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
        _list_json(items, has_more, last_id)
        return

    def price(t: dict[str, Any]) -> str:
        charge, hold = t.get("charge_amount"), t.get("hold_amount")
        return (
            format_credits(charge)
            if charge is not None
            else ""
            if hold is None
            else f"≤{format_credits(hold)}"
        )

    rows = [
        (
            str(t["id"]) + (" (deleted)" if t.get("deleted") else ""),
            format_time(t.get("created_at")),
            str(t.get("key_name") or t.get("key_id") or ""),
            str(t.get("model") or ""),
            t["status"] + (f" {t.get('progress', 0)}%" if t["status"] == "processing" else ""),
            str(t.get("channel") or ""),
            f"{t.get('size') or ''} {t.get('seconds') or ''}s",
            price(t),
            "" if not t.get("error") else f"{t['error'].get('code')}: {t['error'].get('message')}",
        )
        for t in items
    ]
    print_table(("id", "created", "key", "model", "status", "channel", "size", "credits", "error"), rows)
    _more_hint(has_more, "vidgate admin tasks", last_id)


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
    with open_client(_conn(base_url, key)) as client:
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
    with open_client(_conn(base_url, key)) as client:
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
