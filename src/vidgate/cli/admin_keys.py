"""`vidgate admin keys create|list|get|revoke|topup|webhook-secret|limits|ledger`: API keys over the admin API
(/v1/admin/keys), through the SDK, with an admin key. The options are those of `vidgate keys`
(cli/key_options.py); amounts are read and shown as decimal credits, `--json` prints the API's objects
(micro-credits)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vidgate.cli.connection import (
    BaseUrlOption,
    Connection,
    KeyOption,
    RotateOption,
    dump,
    fetch_pages,
    open_client,
    show_webhook_secret,
)
from vidgate.cli.key_options import (
    LIMIT_OPTIONS,
    AdminFlag,
    AllowedModel,
    Balance,
    CreatesPerMinute,
    KeyId,
    KeyName,
    MaxActiveTasks,
    Note,
    RequestsPerMinute,
    TopupAmount,
    TopupReference,
    key_limits,
    limit_text,
    models_text,
    say_created,
    show_key,
    starting_balance,
    topup_amount,
)
from vidgate.cli.output import (
    JsonOption,
    format_time,
    more_hint,
    print_fields,
    print_json,
    print_list_json,
    print_table,
    say,
)
from vidgate.money import format_credits

keys_app = typer.Typer(
    help="API keys: create, list, limits, top up, ledger, webhook secrets, revoke.", no_args_is_help=True
)


@keys_app.command("create")
def keys_create(
    name: KeyName,
    admin: AdminFlag = False,
    balance: Balance = None,
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
    micros = starting_balance(balance)
    with open_client(Connection(base_url, key)) as client:
        created = client.admin.keys.create(
            name, admin=admin, balance=micros, allowed_models=allowed_model or None, **limits
        )
    data = dump(created)
    data.pop("key", None)
    say_created(data, created.key, json_output=json_output)


@keys_app.command("list")
def keys_list(
    revoked: Annotated[bool, typer.Option("--revoked/--active", help="Include revoked keys.")] = True,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """List every key, oldest first (hints only: the keys themselves are never stored)."""
    with open_client(Connection(base_url, key)) as client:
        items, has_more, last_id = fetch_pages(
            lambda cursor: client.admin.keys.list(include_revoked=revoked, after=cursor, limit=100),
            every=True,
        )
    if json_output:
        print_list_json(items, has_more=has_more, last_id=last_id)
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
            models_text(k.get("allowed_models")),
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
    with open_client(Connection(base_url, key)) as client:
        record = dump(client.admin.keys.get(key_id))
    show_key(record, json_output=json_output)


@keys_app.command("revoke")
def keys_revoke(
    key_id: KeyId, json_output: JsonOption = False, base_url: BaseUrlOption = None, key: KeyOption = None
) -> None:
    """Revoke a key (idempotent); servers refuse it once their key cache expires (5 s by default)."""
    with open_client(Connection(base_url, key)) as client:
        record = dump(client.admin.keys.revoke(key_id))
    if json_output:
        print_json(record)
    else:
        say(f"revoked {record['id']} ({record['name']}) at {format_time(record.get('revoked_at'))}")


@keys_app.command("topup")
def keys_topup(
    key_id: KeyId,
    amount: TopupAmount,
    note: Note = None,
    idempotency_key: TopupReference = None,
    json_output: JsonOption = False,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Add credits to a key's balance (a key with an unlimited balance refuses: 409 key_unlimited)."""
    micros = topup_amount(amount)
    with open_client(Connection(base_url, key)) as client:
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
    with open_client(Connection(base_url, key)) as client:
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
    with open_client(Connection(base_url, key)) as client:
        record = client.admin.keys.update(key_id, **changes) if changes else client.admin.keys.get(key_id)
        data = dump(record)
    if json_output:
        print_json(data)
        return
    print_fields(
        [(name.replace("_", " "), limit_text(data.get(name))) for name in LIMIT_OPTIONS]
        + [("allowed models", models_text(data.get("allowed_models")))]
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
    with open_client(Connection(base_url, key)) as client:
        items, has_more, last_id = fetch_pages(
            lambda cursor: client.admin.keys.ledger(
                key_id, after=start if cursor is None else cursor, limit=limit
            ),
            every=all_pages,
        )
    if json_output:
        print_list_json(items, has_more=has_more, last_id=last_id)
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
    more_hint(has_more, f"vidgate admin keys ledger {key_id}", last_id)
