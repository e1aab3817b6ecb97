"""`client.models`: the models the client's key may use, what each can do and what it costs
(`GET /v1/models`, `GET /v1/models/{id}`; docs/api.md).

As in `videos`, `ModelOps` holds each operation once and the sync/async classes only run it.
"""

from __future__ import annotations

from urllib.parse import quote

from vidgate.client._transport import AsyncRunner, Call, Op, RetryPolicy, SyncRunner
from vidgate.client.errors import VidgateError
from vidgate.client.models import ModelInfo, parse_model


def _model_path(model_id: str) -> str:
    # Model ids may hold '/' (a vendor's path-like name); the route takes the rest of the path.
    return quote(model_id.strip(), safe=":/@")


class ModelOps:
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def list(self) -> Op[list[ModelInfo]]:
        raw = yield from self.policy.json(Call("GET", "/v1/models"))
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
            raise VidgateError("Unexpected answer from the server for the model list: no 'data' list")
        return [parse_model(ModelInfo, item) for item in raw["data"]]

    def retrieve(self, model_id: str) -> Op[ModelInfo]:
        raw = yield from self.policy.json(Call("GET", f"/v1/models/{_model_path(model_id)}"))
        return parse_model(ModelInfo, raw)


class Models:
    """`Client.models`."""

    def __init__(self, runner: SyncRunner, ops: ModelOps) -> None:
        self._run = runner.run
        self._ops = ops

    def list(self) -> list[ModelInfo]:
        """Every model the key may use (only those its `allowed_models` name, when it has that limit),
        ordered by id."""
        return self._run(self._ops.list())

    def retrieve(self, model_id: str) -> ModelInfo:
        """One model; `NotFoundError` (param `model`) for one nobody serves or the key may not use."""
        return self._run(self._ops.retrieve(model_id))


class AsyncModels:
    """`AsyncClient.models`: the methods of `Models`, awaitable."""

    def __init__(self, runner: AsyncRunner, ops: ModelOps) -> None:
        self._run = runner.run
        self._ops = ops

    async def list(self) -> list[ModelInfo]:
        return await self._run(self._ops.list())

    async def retrieve(self, model_id: str) -> ModelInfo:
        return await self._run(self._ops.retrieve(model_id))
