"""Time one 5 s segment of the real Wan2.2 TI2V-5B and LTX-Video architectures, with random weights.

On a CUDA machine with no model weights (and no network): the published configs are built in code with
random weights, straight on the GPU, and one segment is generated end to end through the diffusion
engine's own generation code (text encoder, denoising steps, VAE decode). Printed: the time of each
stage, the whole, the peak GPU memory, and the engine's time over one plain diffusers call with the same
arguments, measured side by side after a warm-up of each (`engine_over_diffusers`; target <= 1.2).
Quality means nothing here (the weights are random); speed and memory do, since they depend only on
the shapes.

    python bench/diffusion_gpu.py                      # both pipelines, 720p-class, 50 steps (needs CUDA)
    python bench/diffusion_gpu.py --pipeline wan-ti2v --steps 8
    python bench/diffusion_gpu.py --tiny               # the same code path on CPU with tiny configs (a test)

The configs below are those published with the checkpoints (Wan-AI/Wan2.2-TI2V-5B-Diffusers and
Lightricks/LTX-Video 0.9.x 2B; LTX's are diffusers' class defaults); the VAE latent means and stds are
0 and 1 (their published values only rescale the latents). The tokenizer is a small WordLevel model:
the prompt is padded to the same `max_sequence_length`, so the text encoder does the same work.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

WAN_TI2V_5B: dict[str, dict[str, Any]] = {
    "transformer": {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 24,
        "attention_head_dim": 128,
        "in_channels": 48,
        "out_channels": 48,
        "text_dim": 4096,
        "freq_dim": 256,
        "ffn_dim": 14336,
        "num_layers": 30,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "rope_max_seq_len": 1024,
    },
    "vae": {
        "base_dim": 160,
        "decoder_base_dim": 256,
        "z_dim": 48,
        "dim_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "temperal_downsample": [False, True, True],
        "in_channels": 12,
        "out_channels": 12,
        "is_residual": True,
        "patch_size": 2,
        "scale_factor_spatial": 16,
        "scale_factor_temporal": 4,
        "latents_mean": [0.0] * 48,
        "latents_std": [1.0] * 48,
    },
    # UMT5-XXL's encoder
    "text_encoder": {
        "vocab_size": 256384,
        "d_model": 4096,
        "d_kv": 64,
        "d_ff": 10240,
        "num_layers": 24,
        "num_heads": 64,
        "relative_attention_num_buckets": 32,
        "feed_forward_proj": "gated-gelu",
    },
    "scheduler": {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 5.0},
    "call": {"width": 1280, "height": 704, "frames": 121, "steps": 50, "guidance": 5.0, "fps": 24},
}

WAN_TINY: dict[str, dict[str, Any]] = {
    "transformer": {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 2,
        "attention_head_dim": 12,
        "in_channels": 48,
        "out_channels": 48,
        "text_dim": 32,
        "freq_dim": 256,
        "ffn_dim": 32,
        "num_layers": 2,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "rope_max_seq_len": 32,
    },
    "vae": {
        "base_dim": 3,
        "z_dim": 48,
        "dim_mult": [1, 1, 1, 1],
        "num_res_blocks": 1,
        "temperal_downsample": [False, True, True],
        "in_channels": 12,
        "out_channels": 12,
        "is_residual": True,
        "patch_size": 2,
        "scale_factor_spatial": 16,
        "scale_factor_temporal": 4,
        "latents_mean": [0.0] * 48,
        "latents_std": [1.0] * 48,
    },
    "text_encoder": {
        "vocab_size": 32,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
    },
    "scheduler": {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0},
    "call": {"width": 32, "height": 32, "frames": 9, "steps": 2, "guidance": 5.0, "fps": 8},
}

LTX_2B: dict[str, dict[str, Any]] = {
    "transformer": {},  # diffusers' LTXVideoTransformer3DModel defaults are the 2B model
    "vae": {},  # and AutoencoderKLLTXVideo's the 0.9 VAE
    # T5-XXL v1.1's encoder
    "text_encoder": {
        "vocab_size": 32128,
        "d_model": 4096,
        "d_kv": 64,
        "d_ff": 10240,
        "num_layers": 24,
        "num_heads": 64,
        "relative_attention_num_buckets": 32,
        "feed_forward_proj": "gated-gelu",
    },
    "scheduler": {},
    "call": {"width": 768, "height": 512, "frames": 121, "steps": 50, "guidance": 3.0, "fps": 24},
}

# As diffusers' own LTX fast tests (tests/pipelines/ltx/test_ltx_image2video.py), the text encoder code-built.
LTX_TINY: dict[str, dict[str, Any]] = {
    "transformer": {
        "in_channels": 8,
        "out_channels": 8,
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": 4,
        "attention_head_dim": 8,
        "cross_attention_dim": 32,
        "num_layers": 1,
        "caption_channels": 32,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 8,
        "block_out_channels": (8, 8, 8, 8),
        "decoder_block_out_channels": (8, 8, 8, 8),
        "layers_per_block": (1, 1, 1, 1, 1),
        "decoder_layers_per_block": (1, 1, 1, 1, 1),
        "spatio_temporal_scaling": (True, True, False, False),
        "decoder_spatio_temporal_scaling": (True, True, False, False),
        "decoder_inject_noise": (False, False, False, False, False),
        "upsample_residual": (False, False, False, False),
        "upsample_factor": (1, 1, 1, 1),
        "timestep_conditioning": False,
        "patch_size": 1,
        "patch_size_t": 1,
        "encoder_causal": True,
        "decoder_causal": False,
    },
    "text_encoder": WAN_TINY["text_encoder"],
    "scheduler": {},
    "call": {"width": 32, "height": 32, "frames": 9, "steps": 2, "guidance": 3.0, "fps": 8},
}

CONFIGS = {
    ("wan-ti2v", False): WAN_TI2V_5B,
    ("wan-ti2v", True): WAN_TINY,
    ("ltx", False): LTX_2B,
    ("ltx", True): LTX_TINY,
}


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["a", "the", "boat", "on", "pond", "paper", "red", "sea", "sky", "cat"]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build(pipeline: str, tiny: bool, device: str, dtype: Any) -> Any:
    """The pipeline with random weights, built directly on `device` (no weights on disk)."""
    import diffusers
    import torch
    import transformers

    from vidgate.providers.diffusion.loader import LoadedPipelines, _grid, _temporal

    cfg = CONFIGS[(pipeline, tiny)]
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    try:
        with torch.device(device):
            torch.set_default_dtype(dtype)
            if pipeline == "wan-ti2v":
                transformer = diffusers.WanTransformer3DModel(**cfg["transformer"])
                text_encoder = transformers.UMT5EncoderModel(transformers.UMT5Config(**cfg["text_encoder"]))
                torch.set_default_dtype(torch.float32)  # the Wan VAE runs in float32 (see the loader)
                vae = diffusers.AutoencoderKLWan(**cfg["vae"])
                scheduler = diffusers.UniPCMultistepScheduler(**cfg["scheduler"])
                t2v = diffusers.WanPipeline(
                    tokenizer=_tokenizer(),
                    text_encoder=text_encoder,
                    vae=vae,
                    transformer=transformer,
                    scheduler=scheduler,
                    transformer_2=None,
                    boundary_ratio=None,
                    expand_timesteps=True,
                )
                i2v = diffusers.WanImageToVideoPipeline.from_pipe(t2v)
            else:
                transformer = diffusers.LTXVideoTransformer3DModel(**cfg["transformer"])
                text_encoder = transformers.T5EncoderModel(transformers.T5Config(**cfg["text_encoder"]))
                vae = diffusers.AutoencoderKLLTXVideo(**cfg["vae"])
                scheduler = diffusers.FlowMatchEulerDiscreteScheduler(**cfg["scheduler"])
                t2v = diffusers.LTXPipeline(
                    tokenizer=_tokenizer(),
                    text_encoder=text_encoder,
                    vae=vae,
                    transformer=transformer,
                    scheduler=scheduler,
                )
                i2v = diffusers.LTXImageToVideoPipeline.from_pipe(t2v)
    finally:
        torch.set_default_dtype(previous)
    for pipe in (t2v, i2v):
        pipe.set_progress_bar_config(disable=True)
    return LoadedPipelines(pipeline, t2v, i2v, device, _grid(t2v, pipeline), _temporal(t2v, pipeline))


@contextmanager
def timed(loaded: Any, timings: Timings, sync: Callable[[], None]) -> Iterator[None]:
    """Time the text encoder, each transformer call and the VAE decode by wrapping their forwards."""
    pipe = loaded.text_to_video
    targets = {
        "text_encoder": (pipe.text_encoder, "forward"),
        "transformer": (pipe.transformer, "forward"),
        "vae_decode": (pipe.vae, "decode"),
    }
    saved = {}
    for stage, (module, name) in targets.items():
        original = getattr(module, name)
        saved[stage] = (module, name, original)

        def wrapper(*args: Any, _stage: str = stage, _original: Any = original, **kwargs: Any) -> Any:
            sync()
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                sync()
                timings.stages[_stage] = timings.stages.get(_stage, 0.0) + time.perf_counter() - started
                timings.calls[_stage] = timings.calls.get(_stage, 0) + 1

        setattr(module, name, wrapper)
    try:
        yield
    finally:
        for module, name, original in saved.values():
            setattr(module, name, original)


def run(pipeline: str, *, tiny: bool, steps: int | None, device: str) -> dict[str, Any]:
    import torch

    from vidgate.providers.diffusion.generate import GenerationJob, pipeline_args, run_generation
    from vidgate.providers.diffusion.plan import plan_segments

    dtype = torch.float32 if tiny else torch.bfloat16
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    started = time.perf_counter()
    loaded = build(pipeline, tiny, device, dtype)
    sync()
    build_s = time.perf_counter() - started
    call = CONFIGS[(pipeline, tiny)]["call"]
    n_steps = steps or call["steps"]
    plan = plan_segments(call["frames"], segment_frames=call["frames"], temporal=loaded.temporal, crossfade=0)
    job = GenerationJob(
        "a paper boat on a pond",
        "",
        None,
        call["width"],
        call["height"],
        plan,
        n_steps,
        call["guidance"],
        0,
        16 if tiny else 512,
        call["fps"],
    )

    def engine() -> Any:
        return run_generation(loaded, job, lambda done, total: None, threading.Event())

    def diffusers_itself() -> Any:
        args = pipeline_args(loaded, job, frames=plan.frames[0], seed=job.seed, image=None)
        with torch.inference_mode():
            return loaded.text_to_video(**args).frames

    # Side by side, after a warm-up of each (kernels, allocator): the same segment through the engine and
    # as one plain diffusers call with the same arguments; their ratio is what the engine adds.
    side_by_side: dict[str, float] = {}
    for name, fn in (("diffusers", diffusers_itself), ("engine", engine)):
        fn()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        side_by_side[name] = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timings = Timings()
    steps_seen: list[int] = []
    with timed(loaded, timings, sync):
        t0 = time.perf_counter()
        frames = run_generation(loaded, job, lambda done, total: steps_seen.append(done), threading.Event())
        sync()
        total_s = time.perf_counter() - t0
    return {
        "pipeline": pipeline,
        "tiny": tiny,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "size": f"{call['width']}x{call['height']}",
        "frames": int(frames.shape[0]),
        "frame_shape": list(frames.shape[1:]),
        "steps": n_steps,
        "steps_reported": len(steps_seen),
        "build_s": round(build_s, 2),
        "end_to_end_s": round(total_s, 2),  # with the per-stage timers (a sync around each call)
        "diffusers_call_s": round(side_by_side["diffusers"], 3),
        "engine_s": round(side_by_side["engine"], 3),
        "engine_over_diffusers": round(side_by_side["engine"] / side_by_side["diffusers"], 3),
        "stages_s": {k: round(v, 3) for k, v in timings.stages.items()},
        "stage_calls": timings.calls,
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pipeline", choices=["wan-ti2v", "ltx", "both"], default="both")
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU: checks the code path")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: 50, tiny: 2)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or use --tiny")
    pipelines = ["wan-ti2v", "ltx"] if args.pipeline == "both" else [args.pipeline]
    results = []
    for pipeline in pipelines:
        result = run(pipeline, tiny=args.tiny, steps=args.steps, device=device)
        print(json.dumps(result), flush=True)
        results.append(result)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return results


if __name__ == "__main__":
    main()
