"""The `diffusion` channel kind: open-weight image-to-video models (Wan2.2 TI2V-5B, LTX-Video) through
diffusers, on this machine's GPU (or CPU). Needs torch and the optional
`diffusion` extra (docs/diffusion.md: torch first, for the machine's GPU).

Only `options`, `model_dir` and `plan` are imported without torch; `loader` and `generate` import
torch and diffusers and are imported by the provider only when a job runs (or a channel is built).
"""
