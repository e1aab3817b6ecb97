"""What a local model directory must hold for each pipeline, checked without importing torch.

A diffusers pipeline directory (what `save_pretrained` writes, or a hub snapshot downloaded beforehand)
has `model_index.json` and one folder per component. Nothing is ever downloaded at run time, so a
missing piece must be found at start, by name, not as a hub error on the first task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PIPELINES: Final = ("wan-ti2v", "ltx")

# component folder -> files of which at least one must be there (a config, then the weights).
_CONFIG: Final = ("config.json",)
_MODEL_WEIGHTS: Final = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.bin",
)
_TEXT_WEIGHTS: Final = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES: Final = ("tokenizer.json", "spiece.model", "tokenizer.model")

# Both pipelines have the same five components (the TI2V-5B has no image encoder and no second
# transformer); they differ in the classes model_index.json names.
COMPONENTS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "transformer": (_CONFIG, _MODEL_WEIGHTS),
    "vae": (_CONFIG, _MODEL_WEIGHTS),
    "text_encoder": (_CONFIG, _TEXT_WEIGHTS),
    "tokenizer": (_TOKENIZER_FILES,),
    "scheduler": (("scheduler_config.json",),),
}
PIPELINE_CLASSES: Final[dict[str, frozenset[str]]] = {
    "wan-ti2v": frozenset({"WanPipeline", "WanImageToVideoPipeline"}),
    "ltx": frozenset({"LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline"}),
}


class ModelDirError(ValueError):
    """The model directory cannot serve the pipeline; the message names the missing component."""


@dataclass(frozen=True)
class ModelDirReport:
    path: Path
    pipeline: str
    pipeline_class: str
    components: tuple[str, ...]
    bytes_on_disk: int


def check_model_dir(path: str | Path, pipeline: str) -> ModelDirReport:
    """Check that `path` holds everything `pipeline` loads, or raise ModelDirError naming what is missing."""
    if pipeline not in PIPELINES:
        raise ModelDirError(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
    root = Path(path)
    if not root.is_dir():
        raise ModelDirError(f"model directory {root} does not exist (or is not a directory)")
    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelDirError(f"{root}: model_index.json is missing (not a diffusers pipeline directory)")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{index_path}: cannot be read as JSON ({exc})") from None
    if not isinstance(index, dict):
        raise ModelDirError(f"{index_path}: not a JSON object")
    class_name = str(index.get("_class_name", ""))
    if class_name not in PIPELINE_CLASSES[pipeline]:
        raise ModelDirError(
            f"{root}: model_index.json names {class_name or 'no pipeline class'}, not a {pipeline} pipeline "
            f"({' or '.join(sorted(PIPELINE_CLASSES[pipeline]))})"
        )
    for component, needs in COMPONENTS.items():
        folder = root / component
        declared = index.get(component)
        if not isinstance(declared, list) or not declared or declared[0] is None:
            raise ModelDirError(f"{root}: component {component!r} is not declared in model_index.json")
        if not folder.is_dir():
            raise ModelDirError(f"{root}: component {component!r} is missing (no {component}/ folder)")
        for alternatives in needs:
            if not any((folder / name).is_file() for name in alternatives):
                raise ModelDirError(
                    f"{root}: component {component!r} is incomplete: none of {', '.join(alternatives)} "
                    f"in {component}/"
                )
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return ModelDirReport(root, pipeline, class_name, tuple(COMPONENTS), size)
