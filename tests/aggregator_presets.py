"""The input mappings the aggregator kinds' tests use: the presets of docs/vidgate.example.toml, as
`options.models` entries (model id -> mapping), for fal and Replicate models the shipped fake knows."""

from __future__ import annotations

from typing import Any

FAL_VEO = "fal-ai/veo3.1"
FAL_VEO_I2V = "fal-ai/veo3.1/image-to-video"
FAL_KLING_I2V = "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"
FAL_WAN = "fal-ai/wan-25-preview/text-to-video"
FAL_SEEDANCE = "fal-ai/bytedance/seedance/v1/pro/text-to-video"
FAL_HAILUO = "fal-ai/minimax/hailuo-02/standard/image-to-video"

_VEO: dict[str, Any] = {
    "duration": "duration",
    "durations": [4, 6, 8],
    "duration_type": "string",
    "duration_suffix": "s",
    "aspect_ratio": "aspect_ratio",
    "aspect_ratios": ["16:9", "9:16"],
    "resolution": "resolution",
    "resolutions": ["720p", "1080p"],
    "seed": "seed",
    "negative_prompt": "negative_prompt",
    "audio": "generate_audio",
    "audio_default": True,
}

FAL_MODELS: dict[str, dict[str, Any]] = {
    FAL_VEO: _VEO,
    FAL_VEO_I2V: {**_VEO, "image": "image_url", "image_required": True},
    FAL_KLING_I2V: {
        "image": "image_url",
        "image_required": True,
        "last_frame": "tail_image_url",
        "duration": "duration",
        "durations": [5, 10],
        "duration_type": "string",
        "aspect_ratios": ["16:9", "9:16", "1:1"],
        "resolutions": ["1080p"],
        "negative_prompt": "negative_prompt",
        "fixed": {"cfg_scale": 0.5},
    },
    FAL_WAN: {
        "duration": "duration",
        "durations": [5, 10],
        "duration_type": "string",
        "aspect_ratio": "aspect_ratio",
        "aspect_ratios": ["16:9", "9:16", "1:1"],
        "resolution": "resolution",
        "resolutions": ["480p", "720p", "1080p"],
        "seed": "seed",
        "negative_prompt": "negative_prompt",
        "enhance_prompt": "enable_prompt_expansion",
        "sound": "always",
    },
    FAL_SEEDANCE: {
        "duration": "duration",
        "durations": list(range(2, 13)),
        "duration_type": "string",
        "aspect_ratio": "aspect_ratio",
        "aspect_ratios": ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16"],
        "resolution": "resolution",
        "resolutions": ["480p", "720p", "1080p"],
        "seed": "seed",
        "fixed": {"camera_fixed": False},
    },
    FAL_HAILUO: {
        "image": "image_url",
        "image_required": True,
        "last_frame": "end_image_url",
        "duration": "duration",
        "durations": [6, 10],
        "duration_type": "string",
        "resolution": "resolution",
        "resolutions": ["480p", "720p"],
        "resolution_values": {"480p": "512P", "720p": "768P"},
        "enhance_prompt": "prompt_optimizer",
    },
}

REPLICATE_VEO = "google/veo-3.1-fast"
REPLICATE_KLING = "kwaivgi/kling-v2.6"

REPLICATE_MODELS: dict[str, dict[str, Any]] = {
    REPLICATE_VEO: {
        "image": "image",
        "last_frame": "last_frame",
        "duration": "duration",
        "durations": [4, 6, 8],
        "aspect_ratio": "aspect_ratio",
        "aspect_ratios": ["16:9", "9:16"],
        "resolution": "resolution",
        "resolutions": ["720p", "1080p"],
        "seed": "seed",
        "negative_prompt": "negative_prompt",
        "audio": "generate_audio",
        "audio_default": True,
    },
    REPLICATE_KLING: {
        "image": "start_image",
        "duration": "duration",
        "durations": [5, 10],
        "aspect_ratio": "aspect_ratio",
        "aspect_ratios": ["16:9", "9:16", "1:1"],
        "resolutions": ["1080p"],
        "negative_prompt": "negative_prompt",
        "audio": "generate_audio",
        "audio_default": True,
    },
}
