"""What each Seedance model can do through Ark: the `seedance` kind's table (pure data, no IO).

Sources (public, read 2025-2026): BytePlus ModelArk "Video Generation API" (docs.byteplus.com/docs/ModelArk/
1520757) and its tutorial (1366799), Volcengine Ark "视频生成 API" (volcengine.com/docs/82379/1520757), the
`volcenginesdkarkruntime` SDK's `content_generation.tasks`, and the model pages that quote them. The table
in docs/channels.md names, per model, where each figure comes from.

Model ids come in two spellings and with a release date: BytePlus `seedance-1-0-pro-250528` (Seedance 2.0:
`dreamina-seedance-2-0-260128`), Volcengine `doubao-seedance-1-0-pro-250528`. A model is found by its
family, whatever the prefix and the six-digit date suffix, so a newer dated release of a family keeps its
family's entry. Endpoint ids (`ep-2025...`) name no family: such a channel describes its model with its
own settings (`durations`, `sizes`, `capabilities`).
"""

from __future__ import annotations

import re
from typing import Final

from vidgate.domain.capabilities import ASPECT_RATIOS, AudioSupport, ModelCapabilities, sizes_for

__all__ = ["FAMILIES", "family_of", "seedance_capabilities"]

_ALL_RESOLUTIONS: Final = ("480p", "720p", "1080p")
_PREFIXES: Final = ("doubao-", "dreamina-", "bytedance-")
_DATE_SUFFIX: Final = re.compile(r"-\d{6}$")


def _caps(
    durations: range,
    resolutions: tuple[str, ...] = _ALL_RESOLUTIONS,
    *,
    first_frame: bool = True,
    last_frame: bool = False,
    reference_images: int = 0,
    audio: AudioSupport = AudioSupport.NONE,
    audio_default: bool = False,
    needs_image: bool = False,
) -> ModelCapabilities:
    return ModelCapabilities(
        durations=frozenset(durations),
        sizes=sizes_for(resolutions, ASPECT_RATIOS),  # all six ratios on every model
        first_frame=first_frame,
        last_frame=last_frame,
        reference_images=reference_images,
        audio=audio,
        audio_default=audio_default,
        seed=True,  # every model takes `seed` (-1 or 0..2^32-1)
        negative_prompt=False,  # Ark has no negative prompt
        enhance_prompt=False,  # nor a prompt-extension switch
        needs_first_frame=needs_image,
    )


# Family -> capabilities. Durations are whole seconds (`duration: -1`, "the model picks", is not offered:
# a task's length and price are known before it is sent).
FAMILIES: Final[dict[str, ModelCapabilities]] = {
    # 1.0: 2-12 s, 480p/720p/1080p, silent.
    "seedance-1-0-pro": _caps(range(2, 13), last_frame=True),
    "seedance-1-0-pro-fast": _caps(range(2, 13)),  # first frame only, no last frame
    "seedance-1-0-lite-t2v": _caps(range(2, 13), first_frame=False),  # text only
    "seedance-1-0-lite-i2v": _caps(range(2, 13), last_frame=True, reference_images=4, needs_image=True),
    # 1.5 pro: 4-12 s, sound on by default (`generate_audio` defaults to true).
    "seedance-1-5-pro": _caps(range(4, 13), last_frame=True, audio=AudioSupport.OPTIONAL, audio_default=True),
    # 2.0: 4-15 s, up to 9 reference images (its video and audio references have no request field here),
    # sound on by default; the fast variant stops at 720p.
    "seedance-2-0": _caps(
        range(4, 16),
        last_frame=True,
        reference_images=9,
        audio=AudioSupport.OPTIONAL,
        audio_default=True,
    ),
    "seedance-2-0-fast": _caps(
        range(4, 16),
        ("480p", "720p"),
        last_frame=True,
        reference_images=9,
        audio=AudioSupport.OPTIONAL,
        audio_default=True,
    ),
}


def family_of(model: str) -> str | None:
    """The table's family for an Ark model id (`doubao-seedance-1-0-pro-250528` -> `seedance-1-0-pro`),
    or None for an id that names none (an endpoint id, another vendor's model, a family not listed)."""
    name = model.strip().lower()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name.removeprefix(prefix)
            break
    name = _DATE_SUFFIX.sub("", name)
    return name if name in FAMILIES else None


def seedance_capabilities(model: str) -> ModelCapabilities | None:
    family = family_of(model)
    return None if family is None else FAMILIES[family]
