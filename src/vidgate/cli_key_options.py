"""The options that describe a key, shared by the local `vidgate keys` commands (straight to the
database) and `vidgate admin keys` (over the admin API): its rate limits, its models, credits."""

from __future__ import annotations

from typing import Annotated

import typer

from vidgate.money import parse_credits

LIMIT_OPTIONS = {
    "requests_per_minute": "--requests-per-minute",
    "creates_per_minute": "--creates-per-minute",
    "max_active_tasks": "--max-active-tasks",
}
_LIMIT_HELP = (
    "N (1 or more), `unlimited`, or `default` (the gateway's VIDGATE_{} setting; unlimited when unset)."
)
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


def credits_option(text: str, option: str) -> int:
    """Credits as typed ("2.5") -> micro-credits; a bad amount is a usage error naming `option`."""
    try:
        return parse_credits(text, what=option)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
