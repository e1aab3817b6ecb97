"""Reading and validating Gemini API `predictLongRunning` bodies for Veo, with the checks Google makes.

Sources (the fake's own reading, kept apart from the adapter's table in `vidgate.providers.veo_models` so
that a mistake in one is caught by the other):
- the Gemini API guide "Generate videos with Veo 3.1 in Gemini API" (ai.google.dev/gemini-api/docs/video):
  "Veo API parameters and specifications" (aspectRatio, resolution, durationSeconds, personGeneration per
  model; lastFrame only with image; referenceImages Veo 3.1 only, 8 s and 16:9), "Model features" (sound);
- the google-genai SDK's Developer-API converters (`google/genai/models.py`: `instances[0].image` as
  `{bytesBase64Encoded, mimeType}`, `instances[0].lastFrame`, `instances[0].referenceImages[].{image,
  referenceType}`, `parameters.{aspectRatio, durationSeconds, resolution, personGeneration, negativePrompt,
  enhancePrompt, sampleCount}`; `generateAudio` and `seed` are refused there, although the guide says seed
  "is also available for Veo 3 models": the fake takes it on Veo 3.x and answers generateAudio with 400);
- Google's error envelope and its answer to an unknown field ("Invalid JSON payload received. Unknown
  name ... Cannot find field.").
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Final

from vidgate.media.sniff import sniff_image

__all__ = ["FAKE_MODELS", "FakeVeoModel", "GoogleRefusal", "VeoCreate", "parse_create"]

_IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp"})
_MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
_INSTANCE_FIELDS: Final = frozenset({"prompt", "image", "lastFrame", "referenceImages", "video"})
_PARAMETER_FIELDS: Final = frozenset(
    {
        "aspectRatio",
        "durationSeconds",
        "resolution",
        "negativePrompt",
        "personGeneration",
        "seed",
        "enhancePrompt",
        "sampleCount",
        "generateAudio",
    }
)
_PIXELS: Final = {
    ("720p", "16:9"): (1280, 720),
    ("720p", "9:16"): (720, 1280),
    ("1080p", "16:9"): (1920, 1080),
    ("1080p", "9:16"): (1080, 1920),
}


class GoogleRefusal(Exception):
    """A create Google answers with an error: HTTP status, status word, message."""

    def __init__(self, message: str, *, http: int = 400, status: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.message = message
        self.http = http
        self.status = status


@dataclass(frozen=True)
class FakeVeoModel:
    durations: tuple[int, ...]
    resolutions: tuple[str, ...] | None  # None: the model takes no `resolution` parameter (Veo 2)
    last_frame: bool
    references: int
    seed: bool
    max_samples: int
    people_text: tuple[str, ...]
    people_images: tuple[str, ...]
    eight_only: frozenset[str] = frozenset()  # features that need 8 s
    landscape_only: frozenset[str] = frozenset()  # features that need 16:9


def _veo3(*, v31: bool) -> FakeVeoModel:
    return FakeVeoModel(
        durations=(4, 6, 8),
        resolutions=("720p", "1080p"),
        last_frame=v31,
        references=3 if v31 else 0,
        seed=True,
        max_samples=1,
        people_text=("allow_all",),
        people_images=("allow_adult",),
        eight_only=frozenset({"1080p", "lastFrame", "referenceImages"}) if v31 else frozenset(),
        landscape_only=frozenset({"referenceImages"}) if v31 else frozenset({"1080p"}),
    )


FAKE_MODELS: Final[dict[str, FakeVeoModel]] = {
    "veo-3.1-generate-preview": _veo3(v31=True),
    "veo-3.1-fast-generate-preview": _veo3(v31=True),
    "veo-3.0-generate-001": _veo3(v31=False),
    "veo-3.0-fast-generate-001": _veo3(v31=False),
    "veo-2.0-generate-001": FakeVeoModel(
        durations=(5, 6, 8),
        resolutions=None,
        last_frame=False,
        references=0,
        seed=False,
        max_samples=2,
        people_text=("allow_all", "allow_adult", "dont_allow"),
        people_images=("allow_adult", "dont_allow"),
    ),
}


@dataclass
class VeoCreate:
    """A valid create, as the fake understood it."""

    model: str
    prompt: str
    width: int
    height: int
    seconds: int
    resolution: str
    aspect_ratio: str
    detail: dict[str, Any] = field(default_factory=dict)  # for the journal: what was received


def _unknown(name: str, where: str) -> GoogleRefusal:
    return GoogleRefusal(
        f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
    )


def _image(value: Any, where: str) -> str:
    """Check an Image object; its mime type."""
    if not isinstance(value, dict):
        raise GoogleRefusal(f"`{where}` must be an object with bytesBase64Encoded and mimeType.")
    if "gcsUri" in value:
        raise GoogleRefusal(f"`{where}.gcsUri` isn't supported by the Gemini API; send the bytes inline.")
    inline = value.get("inlineData")
    data, mime = (
        (inline.get("data"), inline.get("mimeType"))
        if isinstance(inline, dict)
        else (value.get("bytesBase64Encoded"), value.get("mimeType"))
    )
    if not isinstance(data, str) or not data:
        raise GoogleRefusal(f"`{where}` has no image bytes (bytesBase64Encoded).")
    if not isinstance(mime, str) or not mime:
        raise GoogleRefusal(f"`{where}.mimeType` is required for inline image bytes.")
    if mime not in _IMAGE_TYPES:
        raise GoogleRefusal(f"Unsupported MIME type for `{where}`: {mime}.")
    if len(data) * 3 // 4 > _MAX_IMAGE_BYTES:
        raise GoogleRefusal(f"`{where}` is larger than 20 MB.")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise GoogleRefusal(f"Invalid value at '{where}.bytesBase64Encoded': not base64.") from None
    if sniff_image(raw[:64]) != mime:
        raise GoogleRefusal(f"Unable to process input image `{where}`: it is not a {mime} image.")
    return mime


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise GoogleRefusal(f"Invalid value at 'parameters.{name}' (TYPE_INT32), {value}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise GoogleRefusal(f"Invalid value at 'parameters.{name}' (TYPE_INT32), {value!r}")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise GoogleRefusal(f"Invalid value at 'parameters.{name}' (TYPE_STRING), {value!r}")
    return value


def parse_create(model_name: str, body: Any) -> VeoCreate:
    """A valid create of `model_name`, else GoogleRefusal (400 INVALID_ARGUMENT, 404 for a model)."""
    model = FAKE_MODELS.get(model_name)
    if model is None:
        raise GoogleRefusal(
            f"models/{model_name} is not found for API version v1beta, or is not supported for "
            "predictLongRunning. Call ListModels to see the list of available models and their supported "
            "methods.",
            http=404,
            status="NOT_FOUND",
        )
    if not isinstance(body, dict):
        raise GoogleRefusal("Invalid JSON payload received. Expected an object.")
    for name in body:
        if name not in ("instances", "parameters"):
            raise _unknown(name, "")
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise GoogleRefusal("`instances` must hold exactly one instance.")
    instance: dict[str, Any] = instances[0]
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise GoogleRefusal("Invalid JSON payload received. `parameters` must be an object.")
    for name in instance:
        if name not in _INSTANCE_FIELDS:
            raise _unknown(name, "instances[0]")
    for name in parameters:
        if name not in _PARAMETER_FIELDS:
            raise _unknown(name, "parameters")
    detail: dict[str, Any] = {"model": model_name, **_received(instance, parameters)}

    prompt = instance.get("prompt", "")
    if not isinstance(prompt, str) or (not prompt.strip() and "image" not in instance):
        raise GoogleRefusal("`prompt` is required: describe the video.")
    if "video" in instance:
        raise GoogleRefusal("Video extension is not served by this fake (instances[0].video).")
    features: set[str] = set()
    if "image" in instance:
        detail["image_mime"] = _image(instance["image"], "instances[0].image")
    if "lastFrame" in instance:
        if not model.last_frame:
            raise GoogleRefusal(f"`lastFrame` isn't supported by {model_name}.")
        if "image" not in instance:
            raise GoogleRefusal("`lastFrame` must be used in combination with `image`.")
        _image(instance["lastFrame"], "instances[0].lastFrame")
        features.add("lastFrame")
    if "referenceImages" in instance:
        refs = instance["referenceImages"]
        if not model.references:
            raise GoogleRefusal(f"`referenceImages` isn't supported by {model_name}.")
        if not isinstance(refs, list) or not 1 <= len(refs) <= model.references:
            raise GoogleRefusal(f"`referenceImages` takes 1 to {model.references} images.")
        if "image" in instance or "lastFrame" in instance:
            raise GoogleRefusal("`referenceImages` cannot be combined with `image` or `lastFrame`.")
        for i, ref in enumerate(refs):
            if not isinstance(ref, dict):
                raise GoogleRefusal(f"`referenceImages[{i}]` must be an object.")
            kind = ref.get("referenceType")
            if not isinstance(kind, str) or kind.lower() != "asset":
                raise GoogleRefusal(
                    f"`referenceImages[{i}].referenceType` {kind!r} isn't supported; use asset."
                )
            _image(ref.get("image"), f"instances[0].referenceImages[{i}].image")
        features.add("referenceImages")

    if "generateAudio" in parameters:
        raise GoogleRefusal("`generateAudio` isn't supported by the Gemini API; Veo 3 always makes sound.")
    aspect = _text(parameters.get("aspectRatio", "16:9"), "aspectRatio")
    if aspect not in ("16:9", "9:16"):
        raise GoogleRefusal(f"Unsupported aspect ratio {aspect!r}: use 16:9 or 9:16.")
    seconds = _int(parameters.get("durationSeconds", 8), "durationSeconds")
    if seconds not in model.durations:
        allowed = ", ".join(str(s) for s in model.durations)
        raise GoogleRefusal(f"The value of `durationSeconds` is out of bound for {model_name}: {allowed}.")
    resolution = "720p"
    if "resolution" in parameters:
        if model.resolutions is None:
            raise GoogleRefusal(f"`resolution` isn't supported by {model_name}.")
        resolution = _text(parameters["resolution"], "resolution").lower()
        if resolution not in model.resolutions:
            raise GoogleRefusal(f"Unsupported resolution {resolution!r} for {model_name}.")
    if resolution == "1080p":
        features.add("1080p")
    for feature in sorted(features):
        if feature in model.eight_only and seconds != 8:
            raise GoogleRefusal(f"{feature} is only supported with durationSeconds 8.")
        if feature in model.landscape_only and aspect != "16:9":
            raise GoogleRefusal(f"{feature} is only supported with aspectRatio 16:9.")
    if "negativePrompt" in parameters:
        _text(parameters["negativePrompt"], "negativePrompt")
    if "seed" in parameters:
        if not model.seed:
            raise GoogleRefusal(f"`seed` isn't supported by {model_name}.")
        if not 0 <= _int(parameters["seed"], "seed") <= 2**32 - 1:
            raise GoogleRefusal("`seed` must be between 0 and 4294967295.")
    if "enhancePrompt" in parameters and not isinstance(parameters["enhancePrompt"], bool):
        raise GoogleRefusal("Invalid value at 'parameters.enhancePrompt' (TYPE_BOOL).")
    samples = _int(parameters.get("sampleCount", 1), "sampleCount")
    if not 1 <= samples <= model.max_samples:
        raise GoogleRefusal(f"`sampleCount` must be between 1 and {model.max_samples} for {model_name}.")
    people = parameters.get("personGeneration")
    if people is not None:
        with_images = bool(features - {"1080p"}) or "image" in instance
        allowed_people = model.people_images if with_images else model.people_text
        if people not in allowed_people:
            mode = "image-to-video" if with_images else "text-to-video"
            raise GoogleRefusal(
                f"personGeneration {people!r} isn't supported for {mode} on {model_name}: "
                f"use {' or '.join(allowed_people)}."
            )
    width, height = _PIXELS[(resolution, aspect)]
    return VeoCreate(model_name, prompt, width, height, seconds, resolution, aspect, detail)


def _received(instance: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """What the journal keeps of a create: every parameter as sent, the images by count and kind."""
    refs = instance.get("referenceImages")
    refs = refs if isinstance(refs, list) else []
    return {
        **{name: parameters[name] for name in sorted(_PARAMETER_FIELDS) if name in parameters},
        "image": "image" in instance,
        "last_frame": "lastFrame" in instance,
        "reference_images": len(refs),
        "reference_types": [r.get("referenceType") for r in refs if isinstance(r, dict)],
    }
