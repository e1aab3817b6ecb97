"""`vidgate keys create|list|limits|topup|adjust|revoke`: API keys, straight on the configured database (on
the server, no running server needed). `vidgate admin keys` (cli/admin_keys.py) does the same over the
admin API; both take the options of cli/key_options.py and print a key as JSON in the API's shape."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

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
    say_created,
    starting_balance,
    topup_amount,
)
from vidgate.cli.local import load_settings, run_or_exit
from vidgate.cli.output import JsonOption, print_json, print_list_json, print_table, say, say_rich
from vidgate.cli.values import parse_credits_option
from vidgate.money import format_credits

if TYPE_CHECKING:
    from vidgate.config import Settings
    from vidgate.store.keys import ApiKey, KeyStore

T = TypeVar("T")

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


def key_object(key: ApiKey) -> dict[str, Any]:
    """A key as the admin API shows it (`GET /v1/admin/keys/{id}`): times in Unix seconds, amounts in
    micro-credits. tests/unit/cli checks that it has the API's fields."""
    return {
        "object": "api_key",
        "id": key.id,
        "name": key.name,
        "hint": key.key_hint,
        "admin": key.is_admin,
        "created_at": key.created_at // 1000,
        "revoked_at": None if key.revoked_at is None else key.revoked_at // 1000,
        "balance": key.balance,
        "held": key.held,
        "available": key.available,
        "requests_per_minute": key.requests_per_minute,
        "creates_per_minute": key.creates_per_minute,
        "max_active_tasks": key.max_active_tasks,
        "allowed_models": None if key.allowed_models is None else list(key.allowed_models),
    }


def _with_keys(action: Callable[[KeyStore, int], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `action(keystore, now)` against the configured database (schema prepared first); `settings`
    when the command has loaded them already."""
    from vidgate.clock import SystemClock
    from vidgate.store import db
    from vidgate.store.keys import KeyStore
    from vidgate.store.schema import prepare_database

    settings = settings or load_settings(check_channels=False)

    async def main() -> T:
        await prepare_database(settings)
        engine = db.create_engine(settings.resolved_database_url)
        try:
            return await action(KeyStore(engine), SystemClock().now_ms())
        finally:
            await engine.dispose()

    return run_or_exit(main)


@keys_app.command("create")
def keys_create(
    name: KeyName,
    admin: AdminFlag = False,
    balance: Balance = None,
    unlimited: Annotated[
        bool, typer.Option("--unlimited", help="Keep no balance (the default without --balance).")
    ] = False,
    allowed_models: AllowedModel = None,
    requests_per_minute: RequestsPerMinute = None,
    creates_per_minute: CreatesPerMinute = None,
    max_active_tasks: MaxActiveTasks = None,
    json_output: JsonOption = False,
) -> None:
    """Create a key. The key is printed once, as the last line of stdout (--json: its `key` field); only
    its hash is kept."""
    micros = starting_balance(balance, unlimited=unlimited)
    limits = key_limits(
        requests_per_minute=requests_per_minute,
        creates_per_minute=creates_per_minute,
        max_active_tasks=max_active_tasks,
    )
    record, plaintext = _with_keys(
        lambda keys, now: keys.create(
            name=name,
            is_admin=admin,
            now=now,
            limits=limits,
            balance=micros,
            allowed_models=allowed_models or None,
        )
    )
    say_created(key_object(record), plaintext, json_output=json_output)


@keys_app.command("topup")
def keys_topup(
    key_id: KeyId,
    amount: TopupAmount,
    note: Note = None,
    reference: TopupReference = None,
    json_output: JsonOption = False,
) -> None:
    """Add credits to a key's balance (a `topup` ledger entry); prints the balance after."""
    micros = topup_amount(amount)
    _change_balance(
        key_id,
        lambda keys, now: keys.topup(key_id, micros, now=now, reference=reference, note=note),
        json_output=json_output,
    )


# ignore_unknown_options: a negative AMOUNT ("-1.5") is an argument, not an unknown option.
@keys_app.command("adjust", context_settings={"ignore_unknown_options": True})
def keys_adjust(
    key_id: KeyId,
    amount: Annotated[str, typer.Argument(help="Credits to add, or take away with a minus (-1.5).")],
    note: Annotated[str, typer.Option(help="Why: required, kept with the ledger entry.")],
    reference: TopupReference = None,
    json_output: JsonOption = False,
) -> None:
    """Correct a key's balance with an `adjust` ledger entry (entries are never edited)."""
    micros = parse_credits_option(amount, "AMOUNT")
    _change_balance(
        key_id,
        lambda keys, now: keys.adjust(key_id, micros, now=now, note=note, reference=reference),
        json_output=json_output,
    )


def _change_balance(
    key_id: str, change: Callable[[KeyStore, int], Awaitable[ApiKey | None]], *, json_output: bool
) -> None:
    from vidgate.errors import Conflict, InvalidRequest

    try:
        record = _with_keys(change)
    except (Conflict, InvalidRequest, ValueError) as exc:  # e.g. past the cap on a balance
        say_rich(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from exc
    if record is None:
        say_rich(f"[red]no key with id {key_id}[/red]")
        raise typer.Exit(1)
    if json_output:
        print_json(key_object(record))
        return
    say(
        f"{record.id}: balance {format_credits(record.balance)}, available {format_credits(record.available)}"
    )


@keys_app.command("list")
def keys_list(json_output: JsonOption = False) -> None:
    """List keys (hints only: the keys themselves are never stored). Tab-separated when piped."""
    records = _with_keys(lambda keys, now: keys.list())
    if json_output:
        items = [key_object(r) for r in records]
        print_list_json(items, last_id=items[-1]["id"] if items else None)
        return

    def when(ms: int | None) -> str:
        return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")

    header = ("id", "name", "hint", "admin", "balance", "held", "created", "revoked")
    rows = [
        (
            r.id,
            r.name,
            r.key_hint,
            "yes" if r.is_admin else "",
            format_credits(r.balance),
            format_credits(r.held),
            when(r.created_at),
            when(r.revoked_at),
        )
        for r in records
    ]
    print_table(header, rows)


@keys_app.command("revoke")
def keys_revoke(key_id: KeyId, json_output: JsonOption = False) -> None:
    """Revoke a key; requests with it get 401 once running servers' key caches expire (5 s by default)."""

    async def revoke(keys: KeyStore, now: int) -> ApiKey | None:
        return await keys.get(key_id) if await keys.revoke(key_id, now=now) else None

    settings = load_settings(check_channels=False)
    record = _with_keys(revoke, settings)
    if record is None:
        say_rich(f"[red]no active key with id {key_id}[/red]")
        raise typer.Exit(1)
    if json_output:
        print_json(key_object(record))
        return
    seconds = settings.key_cache_seconds
    say_rich(f"revoked {key_id}; running servers refuse it within {seconds:g} s (their key cache)")


@keys_app.command("limits")
def keys_limits(
    key_id: KeyId,
    requests_per_minute: RequestsPerMinute = None,
    creates_per_minute: CreatesPerMinute = None,
    max_active_tasks: MaxActiveTasks = None,
    json_output: JsonOption = False,
) -> None:
    """Show a key's limits, or change those given. API processes apply a change within seconds
    (when their cached copy of the key expires); tasks already running are never stopped."""
    changes = key_limits(
        requests_per_minute=requests_per_minute,
        creates_per_minute=creates_per_minute,
        max_active_tasks=max_active_tasks,
    )
    settings = load_settings(check_channels=False)
    record = _with_keys(lambda keys, now: keys.set_limits(key_id, changes), settings)
    if record is None:
        say_rich(f"[red]no key with id {key_id}[/red]")
        raise typer.Exit(1)
    if json_output:
        print_json(key_object(record))
        return

    def in_effect(own: int | None, default: int | None) -> str:
        value = default if own is None else own or None
        return "unlimited" if value is None else str(value)

    rows = [
        (
            field,
            limit_text(getattr(record, field)),
            in_effect(getattr(record, field), getattr(settings, field)),
        )
        for field in LIMIT_OPTIONS
    ]
    print_table(("limit", "this key", "in effect"), rows)
