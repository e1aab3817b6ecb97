"""Values typed on the command line: durations (`--timeout`), points in time (`--since`, `--until`) and
amounts of credits (`--balance`, AMOUNT). A value that does not parse is a usage error (exit 2) that
names its option (docs/cli.md, "Values")."""

from __future__ import annotations

import datetime as dt
import re

import typer

from vidgate.money import parse_credits

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, *, option: str) -> float:
    """'90' or '90s' -> 90; '30m' -> 1800; '1h30m' -> 5400; '1.5h' -> 5400. Usage error otherwise."""
    word = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", word):
        seconds = float(word)
    elif word and _DURATION_PART.sub("", word) == "":
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(word))
    if seconds is None or seconds <= 0:
        raise typer.BadParameter(
            f"{text!r} is not a duration such as 90, 90s, 30m, 1h30m or 2h", param_hint=option
        )
    return seconds


def parse_time(text: str, *, option: str, now: float | None = None) -> int:
    """A point in time as Unix seconds: Unix seconds ('1764000000'), an ISO date or date-time
    ('2026-12-01', '2026-12-01T10:00', with an offset or in UTC when it has none), or an age ('24h', '7d',
    '90m': that long ago)."""
    word = text.strip()
    if re.fullmatch(r"\d{9,}", word):
        return int(word)
    if re.fullmatch(r"(\d+(?:\.\d+)?[smhd])+", word.lower()):
        base = dt.datetime.now(dt.UTC).timestamp() if now is None else now
        return int(base - parse_duration(word, option=option))
    try:
        moment = dt.datetime.fromisoformat(word)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: give Unix seconds, an ISO date such as 2026-12-01 or "
            "2026-12-01T10:00 (UTC unless an offset is given), or an age such as 24h or 7d",
            param_hint=option,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def parse_credits_option(text: str, option: str) -> int:
    """Credits as typed ("2.5") -> micro-credits; a bad amount is a usage error naming `option`."""
    try:
        return parse_credits(text, what=option)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
