"""What the client commands read from the command line (durations, times) and how they word an API error."""

from __future__ import annotations

import datetime as dt

import pytest
import typer

from vidgate.cli.connection import describe_status_error
from vidgate.cli.output import format_duration
from vidgate.cli.values import parse_duration, parse_time
from vidgate.cli.video import CREATE_FLAGS, _file_stem
from vidgate.client import BadRequestError, InternalServerError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("2.5", 2.5), ("30m", 1800), ("1h30m", 5400), ("1.5h", 5400), ("1d", 86400),
     (" 2H ", 7200)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, option="--timeout") == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "0s", "-5", "5x", "m", "1h 30m", "h1"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(typer.BadParameter) as bad:
        parse_duration(text, option="--timeout")
    assert bad.value.param_hint == "--timeout"


def test_durations_are_shown_short() -> None:
    assert [format_duration(s) for s in (2.5, 59, 60, 90, 5400, 3600)] == [
        "2.5s",
        "59s",
        "1m",
        "1m30s",
        "1h30m",
        "1h",
    ]


def test_times() -> None:
    now = 1_800_000_000.0
    assert parse_time("1764000000", option="--since", now=now) == 1_764_000_000
    assert parse_time("24h", option="--since", now=now) == 1_800_000_000 - 86_400
    assert parse_time("7d", option="--since", now=now) == 1_800_000_000 - 7 * 86_400
    midnight = int(dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp())
    assert parse_time("2026-12-01", option="--since") == midnight  # UTC without an offset
    assert parse_time("2026-12-01T10:00", option="--since") == midnight + 36_000
    assert parse_time("2026-12-01T10:00+02:00", option="--since") == midnight + 28_800
    for bad in ("yesterday", "12/01/2026", "2026-13-01", ""):
        with pytest.raises(typer.BadParameter):
            parse_time(bad, option="--since")


def test_an_error_line_names_the_option_the_user_typed() -> None:
    def error(param: str | None, code: str | None = "invalid_value") -> BadRequestError:
        return BadRequestError("Bad.", status_code=400, code=code, param=param)

    assert describe_status_error(error("seconds"), CREATE_FLAGS) == "Bad. (invalid_value, --duration)"
    assert describe_status_error(error("images[1]"), CREATE_FLAGS) == "Bad. (invalid_value, --image #2)"
    assert describe_status_error(error("style"), CREATE_FLAGS) == "Bad. (invalid_value, style)"
    assert describe_status_error(error("limit")) == "Bad. (invalid_value, limit)"
    assert describe_status_error(error(None)) == "Bad. (invalid_value)"
    assert describe_status_error(InternalServerError("Oops.", status_code=502)) == "Oops. (HTTP 502)"


def test_default_file_names_keep_only_the_id() -> None:
    assert _file_stem("sora-2:task_01abc") == "task_01abc"
    assert _file_stem("video_01abc") == "video_01abc"
    assert _file_stem("weird/model:../x") == ".._x"
