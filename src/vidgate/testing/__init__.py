"""Shipped test doubles: run vidgate against fakes, in tests or as a sandbox.

- `ScriptedProvider` (channel kind `scripted`): an in-process channel whose behaviour is set in the
  channel's options (polls before done, failures, watermarking, delays) and which records every call
  in a journal, so tests can prove a step never ran twice.
- `make_clip`: a small real MP4 (H.264 + AAC) for fakes to hand out.
"""
