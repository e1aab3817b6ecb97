"""Loading a pipeline from a local directory: torch and diffusers are imported here, never at vidgate's
import time. Nothing is downloaded: HF_HUB_OFFLINE=1 is set before diffusers is first imported (the
hub library reads it once) and every load passes local_files_only=True as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vidgate.providers.diffusion.model_dir import check_model_dir

# diffusers class pairs: (text-to-video, image-to-video); both share the loaded components.
_CLASSES = {
    "wan-ti2v": ("WanPipeline", "WanImageToVideoPipeline"),
    "ltx": ("LTXPipeline", "LTXImageToVideoPipeline"),
}


@dataclass
class LoadedPipelines:
    """One model in memory, as its text-to-video and image-to-video pipelines (the same weights)."""

    pipeline: str
    text_to_video: Any
    image_to_video: Any
    device: str
    grid: int  # the spatial multiple of the model's sizes (VAE factor x patch)
    temporal: int  # frames are temporal*k + 1


def load_pipelines(model_dir: str, pipeline: str, device: str, dtype: str) -> LoadedPipelines:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import diffusers
    import torch

    diffusers.utils.logging.disable_progress_bar()  # tqdm bars in a worker's log are noise
    report = check_model_dir(model_dir, pipeline)
    torch_dtype = getattr(torch, dtype)
    t2v_name, i2v_name = _CLASSES[pipeline]
    first = getattr(diffusers, report.pipeline_class)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": True}
    if pipeline == "wan-ti2v":
        # The Wan VAE is kept in float32 whatever the transformer's dtype (as Wan's own examples do):
        # in bfloat16 its decode shows banding, and it is small next to the transformer.
        kwargs["vae"] = diffusers.AutoencoderKLWan.from_pretrained(  # type: ignore[no-untyped-call]
            model_dir, subfolder="vae", dtype=torch.float32, local_files_only=True
        )
    loaded = first.from_pretrained(model_dir, **kwargs)
    loaded.set_progress_bar_config(disable=True)
    other_name = i2v_name if report.pipeline_class == t2v_name else t2v_name
    other = getattr(diffusers, other_name).from_pipe(loaded)
    other.set_progress_bar_config(disable=True)
    loaded.to(device)
    t2v, i2v = (loaded, other) if report.pipeline_class == t2v_name else (other, loaded)
    return LoadedPipelines(pipeline, t2v, i2v, device, _grid(t2v, pipeline), _temporal(t2v, pipeline))


def _grid(pipe: Any, pipeline: str) -> int:
    if pipeline == "wan-ti2v":
        patch = pipe.transformer.config.patch_size
        return int(pipe.vae_scale_factor_spatial) * int(patch[1])
    return int(pipe.vae_spatial_compression_ratio) * int(pipe.transformer_spatial_patch_size)


def _temporal(pipe: Any, pipeline: str) -> int:
    if pipeline == "wan-ti2v":
        return int(pipe.vae_scale_factor_temporal)
    return int(pipe.vae_temporal_compression_ratio) * int(pipe.transformer_temporal_patch_size)
