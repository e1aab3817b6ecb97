"""`GET /v1/models` and `GET /v1/models/{id}`: the model catalog a key may use (OpenAI's list shape,
with each model's capabilities and price; see `vidgate.model_catalog`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from starlette.responses import Response

from vidgate.api.deps import authenticate, get_runtime
from vidgate.api.json_response import json_response
from vidgate.api.schemas import ERROR_RESPONSES
from vidgate.errors import NotFound
from vidgate.model_catalog import model_entry, model_list
from vidgate.runtime import Runtime
from vidgate.store.keys import ApiKey

router = APIRouter(tags=["models"])


@router.get("/v1/models", responses=ERROR_RESPONSES, summary="List the models this key may use")
async def list_models(
    key: ApiKey = Depends(authenticate), runtime: Runtime = Depends(get_runtime)
) -> Response:
    return json_response(model_list(runtime.catalog, key.allowed_models))


@router.get("/v1/models/{model_id:path}", responses=ERROR_RESPONSES, summary="One model")
async def retrieve_model(
    model_id: str = Path(description="A model id from the list"),
    key: ApiKey = Depends(authenticate),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    entry = model_entry(runtime.catalog, model_id) if key.may_use(model_id) else None
    if entry is None:  # a model the key may not use is as unknown to it as one nobody serves
        raise NotFound(f"The model '{model_id}' does not exist or this key may not use it.", param="model")
    return json_response(entry)
