"""The admin API's wire shapes (docs/admin-api.md): the request bodies, which `vidgate.api.admin`
validates with them (strictly: a `"5"` is not an amount, an unknown field is an error), and the
responses, which are there for the OpenAPI document (the routes render plain dicts with orjson; the
tests check the two agree)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vidgate.money import MAX_MICROS

MAX_AMOUNT = MAX_MICROS  # what the store takes (a trillion credits): any sum still fits a BIGINT
MAX_LIMIT = 2**31 - 1  # the limits are INTEGER columns
MAX_MODELS = 100

_LIMIT_DOC = "Per-key limit: null = the gateway's default, 0 = unlimited for this key."
_MODELS_DOC = "Models this key may create videos with; null = every model the gateway serves."

TaskStatusName = Literal["pending", "processing", "completed", "failed", "cancelled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _checked_models(models: list[str] | None) -> list[str] | None:
    if models is None:
        return None
    for i, model in enumerate(models):
        if not model.strip() or len(model) > 100:
            raise ValueError(f"item {i} must be a model name of 1 to 100 characters")
    return list(dict.fromkeys(models))  # duplicates say nothing more


class KeyLimitsBody(_Body):
    """`PATCH /v1/admin/keys/{key_id}`: only the fields sent change; null = back to the default."""

    requests_per_minute: int | None = Field(default=None, ge=0, le=MAX_LIMIT, description=_LIMIT_DOC)
    creates_per_minute: int | None = Field(default=None, ge=0, le=MAX_LIMIT, description=_LIMIT_DOC)
    max_active_tasks: int | None = Field(default=None, ge=0, le=MAX_LIMIT, description=_LIMIT_DOC)
    allowed_models: list[str] | None = Field(default=None, max_length=MAX_MODELS, description=_MODELS_DOC)

    _models = field_validator("allowed_models")(_checked_models)


class KeyCreateBody(KeyLimitsBody):
    """`POST /v1/admin/keys`."""

    name: str = Field(min_length=1, max_length=200, examples=["acme-prod"])
    admin: bool = False
    balance: int | None = Field(
        default=None,
        ge=0,
        le=MAX_AMOUNT,
        description="Starting balance in micro-credits (1 credit = 1000000); null or absent = unlimited.",
    )

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("must not be blank")
        return name


class TopupBody(_Body):
    """`POST /v1/admin/keys/{key_id}/topup`."""

    amount: int = Field(gt=0, le=MAX_AMOUNT, description="Micro-credits to add (1 credit = 1000000).")
    note: str | None = Field(default=None, max_length=1000)


class KeyObject(BaseModel):
    object: Literal["api_key"]
    id: str
    name: str
    hint: str = Field(description="The key's first characters, to tell keys apart.")
    admin: bool
    created_at: int
    revoked_at: int | None
    balance: int | None = Field(description="Micro-credits; null = unlimited.")
    held: int = Field(description="Micro-credits held by tasks still running.")
    available: int | None = Field(description="balance - held; null = unlimited.")
    requests_per_minute: int | None = Field(description=_LIMIT_DOC)
    creates_per_minute: int | None = Field(description=_LIMIT_DOC)
    max_active_tasks: int | None = Field(description=_LIMIT_DOC)
    allowed_models: list[str] | None = Field(description=_MODELS_DOC)


class CreatedKeyObject(KeyObject):
    key: str = Field(description="The key itself: shown this once, only its hash is stored.")


class KeyList(BaseModel):
    object: Literal["list"]
    data: list[KeyObject]
    has_more: bool
    last_id: str | None


class LedgerEntryObject(BaseModel):
    object: Literal["ledger_entry"]
    id: int
    key_id: str
    task_id: str | None = Field(description="The task's ULID; null for top-ups and adjustments.")
    attempt: int
    kind: Literal["hold", "capture", "release", "topup", "adjust"]
    amount: int
    created_at: int
    reference: str | None = Field(description="A top-up's Idempotency-Key.")
    note: str | None


class LedgerList(BaseModel):
    object: Literal["list"]
    data: list[LedgerEntryObject]
    has_more: bool
    last_id: int | None


class AdminTaskError(BaseModel):
    code: str
    message: str


class AdminTaskObject(BaseModel):
    object: Literal["admin.task"]
    id: str = Field(description="The task's ULID.")
    video_id: str = Field(description="The id its dialect shows: `video_<ulid>` or `<model>:task_<ulid>`.")
    key_id: str
    key_name: str
    dialect: Literal["unified", "openai"]
    model: str
    status: TaskStatusName
    progress: int
    channel: str | None
    size: str
    seconds: int
    created_at: int
    completed_at: int | None
    error: AdminTaskError | None
    hold_amount: int | None
    charge_amount: int | None
    deleted: bool


class AdminAttempt(BaseModel):
    number: int = Field(description="1, 2, ... in the order they were sent.")
    channel: str
    idempotency_key: str
    sent_at: int = Field(description="When it was sent (Unix s, the database's clock).")
    outcome: Literal["pending", "accepted", "refused", "unknown", "adopted", "not_found"]
    upstream_id: str | None = Field(description="The upstream job it made (accepted) or found (adopted).")
    error: AdminTaskError | None
    settled_at: int | None


class AdminTaskDetail(AdminTaskObject):
    attempts: list[AdminAttempt] = Field(description="Every upstream create sent for the task, in order.")


class AdminTaskList(BaseModel):
    object: Literal["list"]
    data: list[AdminTaskObject]
    has_more: bool
    last_id: str | None


class UsageRowObject(BaseModel):
    key_id: str
    key_name: str
    model: str
    period_start: int | None = Field(description="The bucket's start (Unix s); null for interval=none.")
    tasks: int
    completed: int
    failed: int
    cancelled: int
    seconds_completed: int
    credits_charged: int
    credits_refunded: int


class UsageReport(BaseModel):
    object: Literal["list"]
    start: int
    end: int
    interval: Literal["none", "day", "hour"]
    data: list[UsageRowObject]


class CircuitObject(BaseModel):
    state: Literal["closed", "open", "half_open"]
    failures: int
    open_until: int | None
    last_error: str | None


class RecentObject(BaseModel):
    window_seconds: int
    completed: int
    failed: int
    error_rate: float | None = Field(description="failed / (completed + failed); null when neither.")


class ChannelStatusObject(BaseModel):
    name: str
    kind: str
    enabled: bool
    models: list[str]
    priority: int
    max_concurrent: int | None
    circuit: CircuitObject
    in_flight: int
    recent: RecentObject
    pricing: dict[str, dict[str, object]] | None
    capabilities: dict[str, dict[str, object]]  # per model: what GET /v1/models shows, on this channel


class ChannelList(BaseModel):
    object: Literal["list"]
    data: list[ChannelStatusObject]
