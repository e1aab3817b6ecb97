"""What each Veo model takes through the Gemini API (the `veo` channel kind's table).

Sources, read in 2026 (docs/channels.md, `veo` has the table with the same facts):
- Gemini API guide "Generate videos with Veo 3.1 in Gemini API" (ai.google.dev/gemini-api/docs/video),
  sections "Veo API parameters and specifications", "Model features", "Limitations", "Model versions";
- the google-genai Python SDK (`google/genai/models.py`, `_GenerateVideosConfig_to_mldev`): in Gemini
  Developer API mode it refuses `generate_audio` (and `fps`, `output_gcs_uri`, `mask`, ...) before
  sending, maps `last_frame` to `instances[0].lastFrame` and `reference_images` to
  `instances[0].referenceImages` with `referenceType` (the STYLE type is Vertex-only).

Rules the routing tables cannot express (a duration that depends on the resolution, say) are kept here
as `Constraint`s; the adapter refuses a request that breaks one before anything is sent, naming the
rule, rather than paying for a round trip to Google's 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, sizes_for

__all__ = ["MODELS", "Feature", "VeoModel", "model_named"]

# What a request can use that a model may tie to a duration or an aspect ratio.
Feature = Literal["1080p", "last_frame", "reference_images"]
FEATURE_WORDS: Final[dict[str, str]] = {
    "1080p": "1080p",
    "last_frame": "a last frame (interpolation)",
    "reference_images": "reference images",
}
# personGeneration: which values the API takes for text-to-video and for requests with images.
_PEOPLE_3X = (("allow_all",), ("allow_adult",))
_PEOPLE_2 = (("allow_all", "allow_adult", "dont_allow"), ("allow_adult", "dont_allow"))


@dataclass(frozen=True, slots=True)
class VeoModel:
    """One model's row of the table."""

    name: str
    durations: tuple[int, ...]
    resolutions: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    audio: AudioSupport
    last_frame: bool
    reference_images: int  # how many referenceImages it takes (0: none)
    seed: bool
    sends_resolution: bool  # Veo 2 takes no `resolution` parameter at all
    eight_seconds_only: frozenset[Feature] = frozenset()  # these need durationSeconds 8
    landscape_only: frozenset[Feature] = frozenset()  # these need aspectRatio 16:9
    people_text: tuple[str, ...] = _PEOPLE_3X[0]
    people_images: tuple[str, ...] = _PEOPLE_3X[1]

    def capabilities(self) -> ModelCapabilities:
        return ModelCapabilities(
            durations=frozenset(self.durations),
            sizes=sizes_for(self.resolutions, self.aspect_ratios),
            first_frame=True,
            last_frame=self.last_frame,
            reference_images=self.reference_images,
            audio=self.audio,
            audio_default=self.audio is AudioSupport.ALWAYS,
            negative_prompt=True,
            seed=self.seed,
            enhance_prompt=False,  # not in the Gemini API's parameter table (see docs/channels.md)
            durations_with={f: frozenset({8}) for f in self.eight_seconds_only},
            aspect_ratios_with={f: frozenset({"16:9"}) for f in self.landscape_only},
        )

    def conflict(self, features: set[Feature], seconds: int, aspect_ratio: str | None) -> str | None:
        """Why this combination is refused (None: the model takes it)."""
        for feature in sorted(features):
            if feature in self.eight_seconds_only and seconds != 8:
                return f"{self.name} makes {FEATURE_WORDS[feature]} only at 8 seconds (asked: {seconds})"
            if feature in self.landscape_only and aspect_ratio != "16:9":
                return f"{self.name} takes {FEATURE_WORDS[feature]} only at 16:9 (asked: {aspect_ratio})"
        return None


def _veo_31(name: str) -> VeoModel:
    """Veo 3.1 and 3.1 Fast: 4/6/8 s, 720p/1080p, sound, first and last frame, up to 3 references."""
    return VeoModel(
        name,
        durations=(4, 6, 8),
        resolutions=("720p", "1080p"),
        aspect_ratios=("16:9", "9:16"),
        audio=AudioSupport.ALWAYS,
        last_frame=True,
        reference_images=3,
        seed=True,
        sends_resolution=True,
        eight_seconds_only=frozenset({"1080p", "last_frame", "reference_images"}),
        landscape_only=frozenset({"reference_images"}),
    )


def _veo_30(name: str) -> VeoModel:
    """Veo 3 and 3 Fast: 4/6/8 s, 720p/1080p (1080p at 16:9 only), sound, first frame."""
    return VeoModel(
        name,
        durations=(4, 6, 8),
        resolutions=("720p", "1080p"),
        aspect_ratios=("16:9", "9:16"),
        audio=AudioSupport.ALWAYS,
        last_frame=False,
        reference_images=0,
        seed=True,
        sends_resolution=True,
        landscape_only=frozenset({"1080p"}),
    )


MODELS: Final[dict[str, VeoModel]] = {
    m.name: m
    for m in (
        _veo_31("veo-3.1-generate-preview"),
        _veo_31("veo-3.1-fast-generate-preview"),
        _veo_30("veo-3.0-generate-001"),
        _veo_30("veo-3.0-fast-generate-001"),
        VeoModel(
            "veo-2.0-generate-001",
            durations=(5, 6, 8),
            resolutions=("720p",),
            aspect_ratios=("16:9", "9:16"),
            audio=AudioSupport.NONE,
            last_frame=False,
            reference_images=0,
            seed=False,
            sends_resolution=False,
            people_text=_PEOPLE_2[0],
            people_images=_PEOPLE_2[1],
        ),
    )
}


def model_named(upstream_model: str) -> VeoModel | None:
    """The table's row for a model name as the API spells it (`models/` prefix allowed)."""
    return MODELS.get(upstream_model.removeprefix("models/"))
