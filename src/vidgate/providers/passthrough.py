"""Server-specific request fields, shared by the upstream adapters' options.

`extra_body` sets fields on every request to the channel (a vLLM-Omni server's `num_inference_steps`,
say); `forward_fields` lets clients' own values of the known generation fields (`seed`,
`negative_prompt`, ...) through to this channel. Nothing else a client sends reaches an upstream.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from vidgate.domain.requests import PASSTHROUGH_FIELDS
from vidgate.providers.base import SubmitRequest

Scalar = str | int | float | bool


class PassthroughOptions(BaseModel, extra="forbid"):
    extra_body: dict[str, Scalar] = Field(default_factory=dict)
    forward_fields: list[str] = Field(default_factory=list)

    @field_validator("forward_fields")
    @classmethod
    def _known_fields(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(PASSTHROUGH_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown fields {unknown}; these can be forwarded: {sorted(PASSTHROUGH_FIELDS)}"
            )
        return names

    def fields_for(self, request: SubmitRequest) -> dict[str, Any]:
        forwarded = {k: v for k, v in request.passthrough.items() if k in self.forward_fields}
        return {**self.extra_body, **forwarded}
