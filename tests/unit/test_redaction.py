"""`Redactor`: a secret goes wherever and however it is echoed, and ordinary words stay."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidgate.redaction import REDACTED, WINDOW, Redactor

KEY = "sk-Proj-4fA9/b+Zq1x8W_7kL0mN2pQ3rS4tU5vW6xY7zA8bC9d=="


def leaked(text: str, secret: str = KEY, run: int = 8) -> bool:
    """True when any `run` consecutive characters of the secret appear in the text, in any case."""
    low, sec = text.lower(), secret.lower()
    return any(sec[i : i + run] in low for i in range(len(sec) - run + 1))


@pytest.mark.parametrize(
    "echo",
    [
        f"Incorrect API key provided: {KEY}",
        f"Incorrect API key provided: {KEY.upper()}",
        f"Incorrect API key provided: {KEY.lower()}",
        f"Authorization: Bearer {KEY} was refused",
        f"https://up.example/v1?key={quote(KEY, safe='')}&x=1",
        f"form: key={quote_plus(KEY)}",
        f'{{"key": {json.dumps(KEY)}}}',
        "Basic " + base64.b64encode(f"user:{KEY}".encode()).decode(),
        "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode(),
        "Basic " + base64.b64encode(f":{KEY}".encode()).decode(),
        base64.urlsafe_b64encode(f"xx{KEY}yy".encode()).decode(),
        f"the key starts {KEY[:-1]}",  # cut short by the upstream (the probe's 47 of 48 characters)
        f"the key ends {KEY[5:]}",
        f"{KEY}{KEY.upper()} twice",
    ],
)
def test_every_echo_of_a_secret_is_removed(echo: str) -> None:
    redacted = Redactor([KEY]).redact(echo)
    assert REDACTED in redacted
    assert not leaked(redacted), redacted


def test_ordinary_words_and_short_fragments_stay() -> None:
    text = "Incorrect API key provided: sk-Pro...C9d. Generation failed; try again."
    assert Redactor([KEY]).redact(text) == text
    assert Redactor([]).redact(text) == text
    assert Redactor(["abc"]).redact("abc abc") == "abc abc"  # too short to be told from words


def test_a_short_secret_is_removed_whole_only() -> None:
    redactor = Redactor(["hunter2pw"])  # shorter than the window: only the whole value is it
    assert redactor.redact("pw=HUNTER2PW;") == f"pw={REDACTED};"
    assert redactor.redact("hunter2 is a name") == "hunter2 is a name"


def test_positions_survive_characters_whose_lower_case_is_longer() -> None:
    # "İ".lower() is two characters: a plain lower() would shift every position after it.
    text = "İİİİ " + KEY + " end"
    assert Redactor([KEY]).redact(text) == f"İİİİ {REDACTED} end"


def test_tokens_added_later_are_removed_too() -> None:
    redactor = Redactor([KEY])
    token = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJhayJ9.c2lnbmF0dXJl"
    redactor.add(token)
    assert redactor.redact(f"bad token {token}") == f"bad token {REDACTED}"
    assert redactor.contains_secret(token.upper()) and not redactor.contains_secret("nothing here")


@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    start=st.integers(0, len(KEY) - WINDOW),
    length=st.integers(WINDOW, len(KEY)),
    upper=st.booleans(),
)
def test_any_long_enough_run_of_the_secret_goes_wherever_it_stands(
    before: str, after: str, start: int, length: int, upper: bool
) -> None:
    piece = KEY[start : start + length]
    piece = piece.upper() if upper else piece
    redacted = Redactor([KEY]).redact(before + piece + after)
    assert piece not in redacted
    assert not leaked(redacted, run=WINDOW)
