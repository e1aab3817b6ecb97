"""Tiny random diffusers pipelines built entirely in code (no hub, no weights), saved with
`save_pretrained` so the tests load them back through the provider's real loading path.

The shapes follow diffusers' own fast tests (`Wan225BImageToVideoPipelineFastTests`, the Wan2.2
TI2V-5B layout: a 48-channel VAE with patch 2, `expand_timesteps=True`, no image encoder) with one
difference: their text encoder and tokenizer come from the hub (`hf-internal-testing/tiny-random-t5`);
here a UMT5 encoder is built from a config and the tokenizer is a `tokenizers` WordLevel model.

Only the tests import this (torch and diffusers are the optional `diffusion` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# The diffusion tests skip without the extra, except where CI says the stack must be there.
DIFFUSION_REQUIRED = os.environ.get("VIDGATE_TEST_REQUIRE_DIFFUSION") == "1"

WORDS = ("a an the cat dog boat pond paper red blue sea sky on in of over under runs flies swims").split()  # noqa: SIM905


def require_diffusion_stack() -> None:
    """Skip (or, with VIDGATE_TEST_REQUIRE_DIFFUSION=1, fail) when the `diffusion` extra is missing."""
    missing = []
    for module in ("torch", "diffusers", "transformers", "tokenizers", "ftfy"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        reason = (
            f"the diffusion extra is not installed (missing {', '.join(missing)}): "
            "make test DIFFUSION=1 installs it (torch's CPU build)"
        )
        if DIFFUSION_REQUIRED:
            pytest.fail(f"VIDGATE_TEST_REQUIRE_DIFFUSION=1 but {reason}")
        pytest.skip(reason)


def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def build_tiny_wan_ti2v(model_dir: Path) -> Path:
    """A Wan2.2 TI2V-5B-shaped pipeline with random weights (about 0.1 M parameters), saved to `model_dir`."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=48,
        out_channels=48,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        transformer_2=None,
        boundary_ratio=None,
        expand_timesteps=True,
    )
    pipe.save_pretrained(model_dir)
    return model_dir


def build_tiny_ltx(model_dir: Path) -> Path:
    """An LTX-Video-shaped pipeline with random weights (diffusers' fast-test shapes) in `model_dir`."""
    import torch
    from bench.diffusion_gpu import LTX_TINY
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    cfg = LTX_TINY
    pipe = LTXPipeline(
        tokenizer=tokenizer,
        text_encoder=T5EncoderModel(T5Config(**{**cfg["text_encoder"], "vocab_size": len(tokenizer)})),
        vae=AutoencoderKLLTXVideo(**cfg["vae"]),
        transformer=LTXVideoTransformer3DModel(**cfg["transformer"]),
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )
    pipe.save_pretrained(model_dir)
    return model_dir
