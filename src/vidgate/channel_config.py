"""One channel's settings: where tasks can be sent, what it can do, and how to reach it.

Validated when the settings load, so a typo is an error at start that names the key. The fields every
kind shares live here; a kind's own knobs live under `options` and are checked by that kind's
pydantic model (`Provider.Options`) when the runtime starts (`providers.registry.check_channels`).

Secrets (`api_key`, header values) may be written `env:NAME` to read an environment variable; they are
kept as `SecretStr`, so they never appear in a repr, a log line or a validation error.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from vidgate.domain.capabilities import (
    ALL_SIZES,
    CLASSIC_SIZES,
    AudioSupport,
    CapabilityOverride,
)
from vidgate.domain.pricing import ANY_MODEL, ModelPrice, Price, PriceList
from vidgate.money import parse_credits
from vidgate.redaction import Redactor

WatermarkFree = Literal["always", "optional", "never"]
Orientation = Literal["portrait", "landscape"]
ImageInput = Literal["file", "url", "data_uri"]

Resolution = Literal["480p", "720p", "1080p"]
AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]

ORIENTATIONS: tuple[Orientation, ...] = ("portrait", "landscape")
ALL_DURATIONS = (4, 8, 10, 12, 15, 16, 20, 25)
DEFAULT_MODELS = ("sora-2", "sora-2-pro", "sora-2-all")
# A create slower than its request timeout may still appear in the upstream's list this long after.
LOOKUP_GRACE_SECONDS = 240.0
_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")


def resolve_secret(value: Any, what: str) -> Any:
    """`env:NAME` -> the variable's value; anything else unchanged. Never echoes a secret."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str) and (match := _ENV_REF.match(value.strip())):
        name = match.group(1)
        resolved = os.environ.get(name)
        if not resolved:
            raise ValueError(f"{what} names the environment variable {name}, which is not set")
        return resolved
    return value


# Credits as people write them ("0.25", 2, 0.1), kept as whole micro-credits (vidgate.money).
Credits = Annotated[int, BeforeValidator(lambda v: parse_credits(v, what="a price")), Field(ge=0)]


class AudioPriceSettings(BaseModel):
    """The price of a video with sound, where it differs (Veo charges about twice per second for it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_clip: Credits = 0
    per_second: Credits = 0

    def to_price(self) -> Price:
        return Price(per_clip=self.per_clip, per_second=self.per_second)


class SizePriceSettings(AudioPriceSettings):
    """A price: `per_clip + per_second * seconds`, in credits, and `with_audio` for videos with sound."""

    with_audio: AudioPriceSettings | None = None

    def to_price(self) -> Price:
        audio = self.with_audio.to_price() if self.with_audio is not None else None
        return Price(per_clip=self.per_clip, per_second=self.per_second, with_audio=audio)


class ModelPriceSettings(SizePriceSettings):
    """A model's price on a channel, with other prices for some resolutions ("1080p" = {per_second = 1})
    or sizes ("1792x1024" = {per_second = 0.5}); a size's price wins over its resolution's."""

    resolutions: dict[Resolution, SizePriceSettings] = Field(default_factory=dict)
    sizes: dict[str, SizePriceSettings] = Field(default_factory=dict)


class ModelCapabilitySettings(BaseModel):
    """An operator's corrections to what a model can do on this channel; unset fields keep the kind's
    own answer (docs/channels.md, "What a model can do")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    durations: list[Annotated[int, Field(gt=0)]] | None = Field(default=None, min_length=1)
    resolutions: list[Resolution] | None = Field(default=None, min_length=1)
    aspect_ratios: list[AspectRatio] | None = Field(default=None, min_length=1)
    audio: AudioSupport | None = None
    audio_default: bool | None = None
    first_frame: bool | None = None
    last_frame: bool | None = None
    reference_images: int | None = Field(default=None, ge=0, le=16)
    negative_prompt: bool | None = None
    seed: bool | None = None
    max_seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    enhance_prompt: bool | None = None
    needs_first_frame: bool | None = None
    needs_last_frame: bool | None = None

    def to_override(self) -> CapabilityOverride:
        values = self.model_dump(exclude_none=True, exclude={"durations", "resolutions", "aspect_ratios"})
        return CapabilityOverride(
            durations=tuple(self.durations) if self.durations else None,
            resolutions=tuple(self.resolutions) if self.resolutions else None,
            aspect_ratios=tuple(self.aspect_ratios) if self.aspect_ratios else None,
            values=values,
        )


class ChannelSettings(BaseModel):
    """A place that can turn a task into a video: an upstream service or a built-in engine."""

    # hide_input_in_errors: a validation error must never print an api_key it was given.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    kind: str = Field(description="animate | openai | unified | scripted (vidgate.testing) | module:Factory")
    enabled: bool = True
    # What it serves
    models: list[str] = Field(default_factory=list, description="Public model names, sent unchanged.")
    model_map: dict[str, str] = Field(default_factory=dict, description="Public name -> upstream name.")
    durations: list[int] = Field(default_factory=lambda: list(ALL_DURATIONS))
    sizes: list[str] = Field(default_factory=lambda: list(CLASSIC_SIZES))
    orientations: list[Orientation] = Field(default_factory=lambda: list(ORIENTATIONS))
    max_images: int | None = Field(default=None, ge=0, le=16, description="Default: the kind's own.")
    image_input: ImageInput | None = Field(default=None, description="How images travel; default per kind.")
    watermark_free: WatermarkFree | None = Field(
        default=None, description="always | optional | never; default per kind (a relay: optional)."
    )
    # How it is chosen
    priority: int = Field(
        default=0, description="Lower goes first among suitable channels (before cleanliness)."
    )
    weight: float = Field(default=1.0, gt=0, description="Share of tasks among channels of equal rank.")
    max_concurrent: int | None = Field(default=None, ge=1, description="Tasks on it at once; none = no cap.")
    # How it is reached (upstream kinds)
    base_url: str | None = None
    api_key: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="Extra request headers.")
    proxy: str | None = Field(default=None, description="An explicit proxy; the environment's is ignored.")
    request_timeout_seconds: float = Field(default=60.0, gt=0)
    poll_timeout_seconds: float = Field(default=20.0, gt=0)
    download_timeout_seconds: float = Field(default=600.0, gt=0)
    lookup_window_seconds: float | None = Field(
        default=None,
        gt=0,
        description="After a create's outcome is unknown, how long from when it was sent the worker keeps "
        "looking for its job (channels that can list jobs) before it concludes none was made. Lookups start "
        "once request_timeout_seconds have passed, so it must be longer; default: that plus 240 s.",
    )
    max_connections: int = Field(default=64, ge=1, le=1024)
    honours_idempotency_key: bool = Field(
        default=False,
        description="A repeated Idempotency-Key gets the same job back (another vidgate does this).",
    )
    strict_result: bool = Field(
        default=False,
        description="A result whose size or duration differs from the task's fails with result_mismatch "
        "(by default it is delivered with a warning in the task's detail.warnings).",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Kind-specific; checked by the kind.")
    capabilities: dict[str, ModelCapabilitySettings] = Field(
        default_factory=dict,
        description='What a model can do here, per model (or "*" for every model), over what the kind '
        "declares for it: durations, resolutions, aspect_ratios, audio, images, negative_prompt, seed, ...",
    )
    pricing: dict[str, ModelPriceSettings] = Field(
        default_factory=dict,
        description='What a video costs here, per model (or "*" for every other model); none = free. '
        "See docs/accounts.md.",
    )
    _redactor: Redactor | None = PrivateAttr(default=None)

    @field_validator("sizes")
    @classmethod
    def _sizes_known(cls, sizes: list[str]) -> list[str]:
        unknown = sorted(set(sizes) - set(ALL_SIZES))
        if unknown:
            raise ValueError(f"unknown sizes {unknown}; allowed: {list(ALL_SIZES)}")
        return sizes

    @field_validator("durations")
    @classmethod
    def _durations_positive(cls, durations: list[int]) -> list[int]:
        if not durations or any(d <= 0 for d in durations):
            raise ValueError("durations must be a non-empty list of positive whole seconds")
        return durations

    @field_validator("api_key", mode="before")
    @classmethod
    def _api_key_from_env(cls, value: Any) -> Any:
        return resolve_secret(value, "api_key")

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_from_env(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for name in value:
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
        return {name: resolve_secret(v, f"header {name}") for name, v in value.items()}

    @field_validator("base_url")
    @classmethod
    def _base_url_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.lower().startswith(("http://", "https://")) or "@" in value.split("/")[2]:
            raise ValueError("base_url must be an http(s) URL without user:password (use api_key)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _lookup_outlasts_the_request(self) -> ChannelSettings:
        if (
            self.lookup_window_seconds is not None
            and self.lookup_window_seconds <= self.request_timeout_seconds
        ):
            raise ValueError(
                f"channel {self.name!r}: lookup_window_seconds ({self.lookup_window_seconds:g}) must be "
                f"longer than request_timeout_seconds ({self.request_timeout_seconds:g}): a create still "
                "running upstream would be taken for one that made no job"
            )
        return self

    @model_validator(mode="after")
    def _serves_something(self) -> ChannelSettings:
        if not self.models and not self.model_map:
            raise ValueError(f"channel {self.name!r} serves no model: set models or model_map")
        if not any(orientation_of(s) in self.orientations for s in self.sizes):
            raise ValueError(f"channel {self.name!r}: none of its sizes has an allowed orientation")
        for model in self.capabilities:
            if model != ANY_MODEL and model not in self.public_models:
                raise ValueError(
                    f"channel {self.name!r} sets capabilities of model {model!r}, which it does not serve"
                )
        for model, price in self.pricing.items():
            if model != ANY_MODEL and model not in self.public_models:
                raise ValueError(f"channel {self.name!r} prices model {model!r}, which it does not serve")
            unknown = sorted(set(price.sizes) - set(self.sizes))
            if unknown:
                raise ValueError(
                    f"channel {self.name!r} prices {model!r} at sizes it does not have: {unknown}"
                )
        return self

    # Derived ------------------------------------------------------------------------------------

    @property
    def public_models(self) -> list[str]:
        return list(dict.fromkeys([*self.models, *self.model_map]))

    def upstream_model(self, public: str) -> str:
        return self.model_map.get(public, public)

    @property
    def usable_sizes(self) -> list[str]:
        return [s for s in self.sizes if orientation_of(s) in self.orientations]

    @property
    def price_list(self) -> PriceList:
        return PriceList(
            {
                model: ModelPrice(
                    p.to_price(),
                    {size: sp.to_price() for size, sp in p.sizes.items()},
                    {res: rp.to_price() for res, rp in p.resolutions.items()},
                )
                for model, p in self.pricing.items()
            }
        )

    @property
    def lookup_window(self) -> float:
        """Seconds from a create of unknown outcome being sent to giving up looking for its job."""
        return self.lookup_window_seconds or self.request_timeout_seconds + LOOKUP_GRACE_SECONDS

    def header_values(self) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self.headers.items()}

    @property
    def redactor(self) -> Redactor:
        """Removes this channel's secrets (api_key, header values, and tokens a provider derives from
        them and adds) from upstream words before anyone sees them (`providers.secrets_guard`)."""
        if self._redactor is None:
            secrets = [self.api_key.get_secret_value()] if self.api_key else []
            self._redactor = Redactor([*secrets, *self.header_values().values()])
        return self._redactor


def orientation_of(size: str) -> str:
    width, height = (int(p) for p in size.split("x"))
    return "portrait" if height >= width else "landscape"


def default_channels() -> list[ChannelSettings]:
    """The embedded default: every model goes to the built-in animate engine."""
    return [ChannelSettings(name="animate", kind="animate", models=list(DEFAULT_MODELS))]
