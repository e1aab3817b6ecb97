"""What describes a key, defined once for both ways of managing keys: `vidgate keys ...` (local, straight
to the database) and `vidgate admin keys ...` (over the admin API, from anywhere).

- the options: name, admin, balance, rate limits, allowed models, a top-up's amount, note and
  idempotency key, and their parsing (`key_limits`, `starting_balance`, `topup_amount`);
- the wording of a key in text output (`limit_text`, `models_text`, `key_fields`, `say_created`).

Both sides print a key as JSON in the admin API's shape (`{"object": "api_key", ...}`, amounts in
micro-credits), through output.print_json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from vidgate.cli.output import format_time, print_fields, print_json, say
from vidgate.cli.values import parse_credits_option
from vidgate.money import format_credits

LIMIT_OPTIONS = {
    "requests_per_minute": "--requests-per-minute",
    "creates_per_minute": "--creates-per-minute",
    "max_active_tasks": "--max-active-tasks",
}
_LIMIT_HELP = (
    "N (1 or more), `unlimited`, or `default` (the gateway's VIDGATE_{} setting; unlimited when unset)."
)

KeyId = Annotated[
    str, typer.Argument(help="The key's id (from `vidgate keys list` or `vidgate admin keys list`).")
]
KeyName = Annotated[str, typer.Option(help="A label for the key (who or what uses it).")]
AdminFlag = Annotated[bool, typer.Option("--admin", help="May use the admin API (/v1/admin).")]
Balance = Annotated[
    str | None,
    typer.Option(
        help="Credits it starts with (e.g. 10 or 2.5), held and charged by its tasks; default: `unlimited` "
        "(no balance kept)."
    ),
]
RequestsPerMinute = Annotated[
    str | None,
    typer.Option(
        "--requests-per-minute", help="Requests per minute: " + _LIMIT_HELP.format("REQUESTS_PER_MINUTE")
    ),
]
CreatesPerMinute = Annotated[
    str | None,
    typer.Option(
        "--creates-per-minute",
        help="Creates and remixes per minute: " + _LIMIT_HELP.format("CREATES_PER_MINUTE"),
    ),
]
MaxActiveTasks = Annotated[
    str | None,
    typer.Option(
        "--max-active-tasks",
        help="Tasks pending or processing at once: " + _LIMIT_HELP.format("MAX_ACTIVE_TASKS"),
    ),
]
AllowedModel = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-model", help="A model this key may use; repeat for several (default: every model)."
    ),
]
TopupAmount = Annotated[str, typer.Argument(help="Credits to add (e.g. 10 or 2.5).")]
Note = Annotated[str | None, typer.Option(help="Why (kept with the ledger entry).")]
# One option, two spellings: `vidgate keys topup` has always said --reference, the admin API's
# Idempotency-Key (`vidgate admin keys topup`) --idempotency-key.
TopupReference = Annotated[
    str | None,
    typer.Option(
        "--reference",
        "--idempotency-key",
        help="An idempotency key: running the command again with it adds the amount only once.",
    ),
]


def key_limits(**given: str | None) -> dict[str, int | None]:
    """The limit options given, as stored and as the API takes them: None = the setting's default,
    0 = unlimited for this key. A bad value is a usage error (exit 2) naming its option."""
    out: dict[str, int | None] = {}
    for field, text in given.items():
        if text is None:
            continue
        word = text.strip().lower()
        if word in ("default", "unlimited"):
            out[field] = None if word == "default" else 0
            continue
        value = int(word) if word.isdigit() else 0
        if value < 1:
            raise typer.BadParameter(
                f"{text!r} is not a whole number of 1 or more, `unlimited` or `default`",
                param_hint=LIMIT_OPTIONS[field],
            )
        out[field] = value
    return out


def starting_balance(balance: str | None, *, unlimited: bool = False) -> int | None:
    """--balance in micro-credits; None (no balance kept) without it, with `--balance unlimited` or with
    `--unlimited`. A bad or negative amount is a usage error naming --balance."""
    if balance is not None and unlimited:
        raise typer.BadParameter("give --balance or --unlimited, not both", param_hint="--balance")
    if balance is None or balance.strip().lower() == "unlimited":
        return None
    micros = parse_credits_option(balance, "--balance")
    if micros < 0:
        raise typer.BadParameter(f"a balance cannot be negative: {balance!r}", param_hint="--balance")
    return micros


def topup_amount(text: str) -> int:
    """A top-up's AMOUNT in micro-credits: more than 0, else a usage error."""
    micros = parse_credits_option(text, "AMOUNT")
    if micros <= 0:
        raise typer.BadParameter(f"a top-up must be more than 0 credits: {text!r}", param_hint="AMOUNT")
    return micros


def limit_text(value: int | None) -> str:
    """A key's own limit: `default` (the setting's), `unlimited` (0) or the number."""
    return "default" if value is None else "unlimited" if value == 0 else str(value)


def models_text(models: Sequence[str] | None) -> str:
    return "all" if models is None else ", ".join(models) or "(none)"


def key_fields(key: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A key (the API's JSON object) as `field value` rows."""
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
        ("requests per minute", limit_text(key.get("requests_per_minute"))),
        ("creates per minute", limit_text(key.get("creates_per_minute"))),
        ("max active tasks", limit_text(key.get("max_active_tasks"))),
        ("allowed models", models_text(key.get("allowed_models"))),
    ]


def show_key(key: Mapping[str, Any], *, json_output: bool) -> None:
    """One key: its JSON object, or `field value` rows."""
    if json_output:
        print_json(dict(key))
    else:
        print_fields(key_fields(key))


def say_created(key: Mapping[str, Any], plaintext: str, *, json_output: bool) -> None:
    """A new key: the JSON object with its `key`, or a line on stderr and the key alone as the last line of
    stdout (`KEY=$(vidgate keys create --name me | tail -1)`)."""
    if json_output:
        print_json({**key, "key": plaintext})
        return
    say(
        f"created key {key['id']} ({key['name']}{', admin' if key.get('admin') else ''}, balance "
        f"{format_credits(key.get('balance'))}); store it now, it is not shown again:"
    )
    typer.echo(plaintext)
