"""The one reader of request bodies that are JSON (both create routes and remix), with bounds.

`json.loads` alone lets through what later breaks the request with a 500: nesting deep enough to
exhaust the recursion limit, integer literals longer than Python will turn into an `int`, the
non-standard `NaN`/`Infinity`, and strings the store cannot keep (an unpaired UTF-16 surrogate such
as `"\\ud800"` cannot be encoded as UTF-8; PostgreSQL text cannot hold NUL). All of them are refused
here with a 400 naming the field, so nothing un-storable ever reaches the domain or the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from fastapi import Request

from vidgate.api.errors import printable
from vidgate.errors import InvalidRequest, UnsupportedMediaType

MAX_DEPTH = 32  # real bodies nest 2 levels (input_reference.image_url); this is ample
# Longer than any number a field takes (the widest, `seed`, is below 2**63, 19 digits).
MAX_INT_DIGITS = 19
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _TooManyDigits:
    """Stands in for an integer literal too long to convert, so the refusal can name its field."""


_TOO_MANY_DIGITS = _TooManyDigits()


def _parse_int(literal: str) -> int | _TooManyDigits:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        return _TOO_MANY_DIGITS
    return int(literal)


def _refuse_constant(name: str) -> NoReturn:
    raise InvalidRequest(
        f"The request body is not valid JSON: {name} is not a JSON value.", code="invalid_json"
    )


async def read_json_object(request: Request) -> dict[str, Any]:
    # Relay clients are sloppy with Content-Type (often none, sometimes text/plain), so any body is
    # tried as JSON; only form encodings, which can never be the JSON these routes take, are a 415.
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
        raise UnsupportedMediaType("This route takes a JSON body (Content-Type: application/json).")
    return parse_json_object(await request.body())


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """`raw` as a JSON object whose every value is one we can store, else InvalidRequest."""
    try:
        body = json.loads(raw, parse_int=_parse_int, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    check_storable(body)
    return body


def check_storable(fields: Mapping[str, Any]) -> None:
    """Refuse, naming the field, any value nested too deeply, too long a number or un-storable text.

    Also run on form fields: a multipart body may declare a charset (utf-7) that decodes to surrogates.
    """
    _check_members(fields, "", depth=1)


def _check_members(members: Mapping[str, Any], path: str, *, depth: int) -> None:
    """The members of an object that sits `depth` containers deep (the body itself is 1)."""
    for key, value in members.items():
        member = f"{path}.{printable(key)}" if path else printable(key)
        _check_text(key, member)
        _check(value, member, depth=depth + 1)


def _check(value: Any, path: str, *, depth: int) -> None:
    """`depth`: how many containers deep `value` would be if it is one."""
    if isinstance(value, str):
        _check_text(value, path)
    elif value is _TOO_MANY_DIGITS:
        raise InvalidRequest(
            f"'{path}' is a number of more than {MAX_INT_DIGITS} digits; no field takes one that large.",
            param=path,
        )
    elif isinstance(value, dict | list) and depth > MAX_DEPTH:
        raise _too_deep()
    elif isinstance(value, dict):
        _check_members(value, path, depth=depth)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth=depth + 1)


def _check_text(text: str, path: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    what = (
        "a NUL character"
        if found.group() == "\x00"
        else f"an unpaired UTF-16 surrogate ({printable(found.group())}), which is not valid Unicode"
    )
    raise InvalidRequest(f"'{path}' contains {what}; such text cannot be stored.", param=path)


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The request body is nested too deeply (at most {MAX_DEPTH} levels).", code="invalid_json"
    )
