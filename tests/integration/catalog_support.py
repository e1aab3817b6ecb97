"""Channels and keys for the model-catalog tests (API, SDK, CLI): three models that differ in every
option, and keys limited to some models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidgate.config import ChannelSettings


def catalog_channels(state_dir: Path) -> list[ChannelSettings]:
    """`sora-2` on the built-in engine (silent, priced by resolution), `veo-3.1` on a relay (always with
    sound, 16:9/9:16 at 720p, priced with sound) and `studio-1`, a scripted model that takes every option
    (first and last frame, sound or not, seed, negative prompt) at 480p/720p in three ratios."""
    return [
        ChannelSettings(
            name="engine",
            kind="animate",
            models=["sora-2"],
            durations=[4, 8],
            pricing={"sora-2": {"per_second": "0.1", "resolutions": {"1080p": {"per_second": "0.25"}}}},
        ),
        ChannelSettings(
            name="relay",
            kind="unified",
            base_url="http://127.0.0.1:9/v1",
            models=["veo-3.1"],
            durations=[8],
            capabilities={
                "veo-3.1": {"audio": "always", "resolutions": ["720p"], "aspect_ratios": ["16:9", "9:16"]}
            },
            pricing={"veo-3.1": {"per_second": "0.2", "with_audio": {"per_second": "0.4"}}},
        ),
        ChannelSettings(
            name="studio",
            kind="scripted",
            models=["studio-1"],
            durations=[5, 10],
            options={"state_dir": str(state_dir / "studio")},
            capabilities={
                "studio-1": {
                    "audio": "optional",
                    "last_frame": True,
                    "reference_images": 0,
                    "resolutions": ["480p", "720p"],
                    "aspect_ratios": ["16:9", "9:16", "1:1"],
                }
            },
        ),
    ]


async def key_for_models(gw: Any, allowed: list[str] | None = None) -> str:
    """A plain key of `gw`, allowed `allowed` models (None: every model)."""
    _, plaintext = await gw.runtime.keys.create(
        name="catalog", is_admin=False, now=gw.runtime.clock.now_ms(), limits={}, balance=None,
        allowed_models=allowed,
    )  # fmt: skip
    return str(plaintext)
