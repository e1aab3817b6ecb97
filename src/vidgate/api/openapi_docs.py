"""The request bodies FastAPI cannot see in the OpenAPI document behind `/docs`.

`POST /v1/videos` (multipart as the SDK sends it, or JSON) and the remix read the raw request
themselves, to accept what relay clients and the SDK send, so FastAPI has no parameter to describe;
`POST /v1/video/create` declares its body on the route. Bearer auth is declared here too, on every
`/v1/` route (each depends on `vidgate.api.deps.authenticate`). The models here describe the wire shapes only:
`vidgate.domain.requests` validates.

`public_document` is the document for everyone but admins: without the admin API, whose routes
answer anyone else as unknown routes (vidgate.api.admin), so the document must not list them either.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from vidgate.api.deps import BEARER_SCHEME
from vidgate.domain.capabilities import ALL_SIZES

_SECONDS = 'OpenAI\'s "4", "8", "12", "16", "20", or the relay "10", "15", "25", where a channel allows it.'


class ImageUrlReference(BaseModel):
    image_url: str = Field(description="An http(s) URL or a data:image/...;base64, URI.")


def _optional_means_absent(schema: dict[str, Any]) -> None:
    """An optional field is one left out, never `null`: without this, Swagger UI's form would send the
    word "null" for every field left empty."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]
            kinds = [k for k in prop.pop("anyOf", []) if k != {"type": "null"}]
            prop.update(kinds[0] if len(kinds) == 1 else {"anyOf": kinds} if kinds else {})


class _OpenAICreateFields(BaseModel):
    """The fields both encodings of `POST /v1/videos` share."""

    model_config = ConfigDict(json_schema_extra=_optional_means_absent)

    prompt: str = Field(min_length=1, examples=["a paper boat on a pond"])
    model: str = Field(default="sora-2")
    seconds: str = Field(default="4", description=_SECONDS, examples=["8"])
    size: str = Field(default="720x1280", json_schema_extra={"enum": list(ALL_SIZES)})
    watermark: bool = Field(default=True, description='Also "true" / "false".')
    private: bool = False
    style: str | None = None
    storyboard: bool | None = None
    character_url: str | None = None
    character_timestamps: str | None = Field(default=None, description='Two seconds, e.g. "1,3".')
    callback_url: str | None = Field(default=None, description="Receives a signed event when the task ends.")


class OpenAICreateForm(_OpenAICreateFields):
    """`POST /v1/videos` as `multipart/form-data` (what the openai SDK sends)."""

    input_reference: bytes | None = Field(
        default=None, description="One reference image file (PNG, JPEG, WebP, GIF, AVIF, BMP or TIFF)."
    )
    input_reference_url: str | None = Field(
        default=None,
        alias="input_reference[image_url]",
        description="Or the reference image's URL (how the SDK encodes `{image_url}`).",
    )


class OpenAICreateJson(_OpenAICreateFields):
    """`POST /v1/videos` as a JSON object."""

    input_reference: ImageUrlReference | str | None = Field(
        default=None, description="The reference image: `{image_url}` or the URL itself."
    )


class RemixBody(BaseModel):
    """`POST /v1/videos/{video_id}/remix`."""

    prompt: str = Field(min_length=1, examples=["the same boat at night"])


def install_openapi_docs(app: FastAPI) -> None:
    """Make `app.openapi()` (served at /openapi.json) describe those bodies."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        with warnings.catch_warnings():
            # FastAPI gives each method of a GET+HEAD route the same operationId, and warns about it:
            # _unique_operation_ids gives each its own.
            warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
            schema = generate()  # FastAPI's own document, which it caches on the app: completed here
        _unique_operation_ids(schema)
        _declare_bearer_auth(schema)
        _describe_body(
            schema,
            "/v1/videos",
            "post",
            form=OpenAICreateForm,
            json=OpenAICreateJson,
            # What "Try it out" starts from: without it Swagger UI would make up an unusable
            # `input_reference` ({"image_url": "string"}).
            json_example={"prompt": "a paper boat on a pond", "seconds": "8", "size": "1280x720"},
        )
        _describe_body(schema, "/v1/videos/{video_id}/remix", "post", json=RemixBody)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_bearer_auth(schema: dict[str, Any]) -> None:
    """Every `/v1/` route authenticates (`vidgate.api.deps.authenticate`); nothing else does."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = dict(BEARER_SCHEME)
    for path, operations in schema["paths"].items():
        if path.startswith("/v1/"):
            for op in operations.values():
                op["security"] = [{"bearerAuth": []}]


def _unique_operation_ids(schema: dict[str, Any]) -> None:
    operations = [(method, op) for ops in schema["paths"].values() for method, op in ops.items()]
    counts = Counter(op["operationId"] for _, op in operations)
    for method, op in operations:
        if counts[op["operationId"]] > 1:
            # The shared id ends in whichever of the route's methods FastAPI happened to pick.
            shared = re.sub(r"_(get|head|post|put|patch|delete|options)$", "", op["operationId"])
            op["operationId"] = f"{shared}_{method}"


def _describe_body(
    schema: dict[str, Any],
    path: str,
    method: str,
    *,
    json: type[BaseModel],
    form: type[BaseModel] | None = None,
    json_example: dict[str, Any] | None = None,
) -> None:
    content: dict[str, dict[str, Any]] = {"application/json": {"schema": _component(schema, json)}}
    if json_example is not None:
        content["application/json"]["example"] = json_example
    if form is not None:
        content["multipart/form-data"] = {"schema": _component(schema, form)}
    schema["paths"][path][method]["requestBody"] = {"required": True, "content": content}


def _component(schema: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    """Add `model` (and the models it uses) to the document's schemas; return a reference to it."""
    body = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(body.pop("$defs", {}))
    schemas[model.__name__] = body
    return {"$ref": f"#/components/schemas/{model.__name__}"}


ADMIN_PREFIX = "/v1/admin"
ADMIN_TAG = "admin"
_SCHEMA_REF = "#/components/schemas/"


def public_document(full: dict[str, Any]) -> dict[str, Any]:
    """`full` (left as it is) without the admin API's paths, its tag, and the schemas only they use."""
    public = copy.deepcopy(full)
    paths = public["paths"]
    admin_paths = {
        path: paths.pop(path)
        for path in list(paths)
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
    }
    schemas = public.get("components", {}).get("schemas", {})
    # The rest of the document (paths, and components other than schemas) keeps what it refers to.
    rest = {k: v for k, v in public.items() if k != "components"}
    rest["components"] = {k: v for k, v in public.get("components", {}).items() if k != "schemas"}
    for name in _reachable(admin_paths, schemas) - _reachable(rest, schemas):
        del schemas[name]
    if "tags" in public:
        public["tags"] = [tag for tag in public["tags"] if tag.get("name") != ADMIN_TAG]
    return public


def _reachable(start: Any, schemas: dict[str, Any]) -> set[str]:
    """The schema names `start` refers to, and those they refer to, and so on."""
    found: set[str] = set()
    pending = list(_schema_refs(start))
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(_schema_refs(schemas.get(name, {})))
    return found


def _schema_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
            yield ref[len(_SCHEMA_REF) :]
        for value in node.values():
            yield from _schema_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_refs(value)
