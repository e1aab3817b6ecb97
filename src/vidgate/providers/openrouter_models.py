"""What the video models the `openrouter` kind knows can do through OpenRouter (pure data, no IO).

OpenRouter describes each video model in `GET /api/v1/videos/models` (`supported_durations`,
`supported_resolutions`, `supported_aspect_ratios`, `supported_sizes`, `supported_frame_images`,
`generate_audio`, `seed`; "an out-of-set value returns a 400"). The table below holds the models whose
figures are those of their makers' own documentation, which vidgate's vendor kinds already carry: Veo
3.1 through Google Vertex AI (the `veo` kind's table, with Vertex's sound switch), Sora 2 (OpenAI's
Videos API: 4, 8 or 12 s, the six Sora sizes, always with sound, one image as the first frame). Any
other model is described by the channel's own settings (`durations`, `sizes`, `max_images`: one first
frame by default), with no seed, last frame or sound until the channel's `capabilities` say so: check
the model's entry in `GET /api/v1/videos/models` and write it down there.
"""

from __future__ import annotations

from typing import Final

from vidgate.domain.capabilities import AudioSupport, ModelCapabilities, sizes_for

__all__ = ["MODELS", "openrouter_capabilities"]

_VEO_31: Final = ModelCapabilities(
    durations=frozenset({4, 6, 8}),
    sizes=sizes_for(("720p", "1080p"), ("16:9", "9:16")),
    first_frame=True,
    last_frame=True,
    reference_images=3,
    audio=AudioSupport.OPTIONAL,  # Vertex AI's generateAudio; OpenRouter's generate_audio carries it
    audio_default=True,  # the endpoint's generate_audio flag is on: sound unless a request says no
    seed=True,
    negative_prompt=False,  # only through the provider's passthrough parameters
    # Veo 3.1's rules (the `veo` kind's table): 1080p, a last frame and references at 8 s only;
    # references at 16:9 only.
    durations_with={
        "1080p": frozenset({8}),
        "last_frame": frozenset({8}),
        "reference_images": frozenset({8}),
    },
    aspect_ratios_with={"reference_images": frozenset({"16:9"})},
)
_SORA_2: Final = ModelCapabilities(
    durations=frozenset({4, 8, 12}),
    sizes=frozenset({"720x1280", "1280x720"}),
    first_frame=True,  # OpenAI's input_reference: the first frame
    audio=AudioSupport.ALWAYS,
)
_SORA_2_PRO: Final = ModelCapabilities(
    durations=frozenset({4, 8, 12}),
    sizes=frozenset({"720x1280", "1280x720", "1024x1792", "1792x1024"}),
    first_frame=True,
    audio=AudioSupport.ALWAYS,
)

MODELS: Final[dict[str, ModelCapabilities]] = {
    "google/veo-3.1": _VEO_31,
    "google/veo-3.1-fast": _VEO_31,
    "openai/sora-2": _SORA_2,
    "openai/sora-2-pro": _SORA_2_PRO,
}


def openrouter_capabilities(model: str) -> ModelCapabilities | None:
    """The table's entry for an OpenRouter model slug (a `:variant` suffix ignored), or None."""
    return MODELS.get(model.strip().lower().partition(":")[0])
