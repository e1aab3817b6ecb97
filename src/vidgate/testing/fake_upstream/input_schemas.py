"""Model input schemas for the aggregator fakes (fal, Replicate): what a model's input object may hold.

fal and Replicate each publish every model's input schema (fal: the model page's "Input Schema", the
`openapi.json` of each endpoint; Replicate: the version's `openapi_schema`, "Input schema" on the model's
API page). The fakes carry the schemas of the models the example configuration ships presets for, as
those pages list them, and check a create's input against them the way the aggregators' validation does:
a missing required input, a value outside an enum, a wrong type. They are stricter in one way, on
purpose: an input the schema does not name is refused too (a mapping's typo shows up as an error instead
of a field silently dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from vidgate.domain.capabilities import ASPECT_RATIOS, canonical_size

__all__ = [
    "InputField",
    "InputProblem",
    "ModelSchema",
    "check_input",
    "clip_shape",
    "journal_fields",
    "seconds_of",
]

Kind = Literal["string", "integer", "number", "boolean", "url", "urls"]
# The models' words for resolutions vidgate has other words for (MiniMax: 768P), for the clip's size.
_RESOLUTION_WORDS: Final[dict[str, str]] = {"512p": "480p", "768p": "720p"}
# The journal's own fields: an input of one of these names is kept only in the entry's `input`.
_RESERVED: Final = frozenset({"prompt", "job", "key", "op", "dialect", "status", "at"})


@dataclass(frozen=True)
class InputField:
    kind: Kind
    choices: tuple[Any, ...] = ()
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class ModelSchema:
    """One model's inputs, and which of them say the length, the resolution and the ratio (for the
    fake's clip), with the model's defaults for each."""

    fields: Mapping[str, InputField]
    duration: str | None = None
    default_seconds: int = 5
    resolution: str | None = None
    default_resolution: str = "720p"
    aspect_ratio: str | None = None
    default_ratio: str = "16:9"
    output: Literal["file", "url", "urls"] = "file"  # fal's {video: {url}}, Replicate's URL or URLs
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputProblem:
    """One refused input: its name, the rule's kind (`missing`, `enum`, `type`, `extra`, `range`) and a
    sentence."""

    field: str
    kind: str
    message: str


def _type_ok(spec: InputField, value: Any) -> bool:
    if spec.kind == "string":
        return isinstance(value, str)
    if spec.kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec.kind == "boolean":
        return isinstance(value, bool)
    if spec.kind == "url":
        return isinstance(value, str) and value.lower().startswith(("http://", "https://", "data:"))
    return isinstance(value, list) and all(_type_ok(InputField("url"), v) for v in value)


def check_input(schema: ModelSchema, body: Mapping[str, Any]) -> list[InputProblem]:
    """Every problem with `body` as `schema`'s model would see it (empty: it is taken)."""
    problems: list[InputProblem] = []
    for name, spec in schema.fields.items():
        if name not in body or body[name] is None:
            if spec.required:
                problems.append(InputProblem(name, "missing", f"{name} is required"))
            continue
        value = body[name]
        if not _type_ok(spec, value):
            problems.append(InputProblem(name, "type", f"{name} must be a {spec.kind}, not {value!r}"))
        elif spec.choices and value not in spec.choices:
            shown = ", ".join(repr(c) for c in spec.choices)
            problems.append(InputProblem(name, "enum", f"{name} must be one of {shown}"))
        elif (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            problems.append(
                InputProblem(name, "range", f"{name} must be between {spec.minimum} and {spec.maximum}")
            )
    for name in body:
        if name not in schema.fields:
            problems.append(InputProblem(name, "extra", f"{name} is not an input of this model"))
    return problems


def seconds_of(schema: ModelSchema, body: Mapping[str, Any]) -> int:
    """The length the input asks for (5, "5", "8s"), or the model's default."""
    raw = body.get(schema.duration) if schema.duration else None
    text = str(raw).strip().lower().removesuffix("s") if raw is not None else ""
    return int(text) if text.isdigit() else schema.default_seconds


def clip_shape(schema: ModelSchema, body: Mapping[str, Any]) -> tuple[int, int]:
    """The (width, height) the input asks for, from its resolution and ratio words (the model's defaults
    where it says nothing, 16:9 where its ratio is `auto` or unknown)."""
    resolution = (
        str(body.get(schema.resolution) or schema.default_resolution)
        if schema.resolution
        else (schema.default_resolution)
    )
    resolution = _RESOLUTION_WORDS.get(resolution.lower(), resolution.lower())
    if resolution not in ("480p", "720p", "1080p"):
        resolution = "720p"
    ratio = (
        str(body.get(schema.aspect_ratio) or schema.default_ratio)
        if schema.aspect_ratio
        else schema.default_ratio
    )
    if ratio not in ASPECT_RATIOS:
        ratio = "16:9"
    return canonical_size(resolution, ratio)


def journal_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """A create's input for the journal: every input by name (those the journal's own fields take are
    only in `input`), and the whole object as `input`. A caller's own detail keys (`model`, `fault`)
    go after these and win a name they share."""
    return {"input": dict(body), **{k: v for k, v in body.items() if k not in _RESERVED}}
