"""What the SDK returns: pydantic models of the server's answers, tolerant of fields added later
(`extra="allow"`), and the one place the OpenAI dialect's Video object becomes a `Video`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vidgate.client.errors import VidgateError

M = TypeVar("M", bound=BaseModel)

VideoStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
Variant = Literal["video", "thumbnail", "spritesheet"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class VideoError(_Model):
    code: str | None = None
    message: str | None = None


class Video(_Model):
    """A video task. `id` is accepted by every method (and every route of the server); `status` is
    vidgate's own five-valued status, whichever dialect the task was created with."""

    id: str
    status: VideoStatus
    progress: int = 0
    model: str | None = None
    prompt: str | None = None
    size: str | None = None  # "WxH"
    seconds: int | None = None
    created_at: int | None = None  # Unix seconds
    completed_at: int | None = None
    expires_at: int | None = None  # when retention deletes the media, if it is set
    remixed_from: str | None = None
    error: VideoError | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class VideoPage(_Model):
    data: list[Video]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


# The OpenAI dialect shows vidgate's statuses in OpenAI's four words; cancelled shows as failed with
# the code `cancelled` (see `needs_status_check`).
_FROM_OPENAI: dict[str, VideoStatus] = {
    "queued": "pending",
    "in_progress": "processing",
    "completed": "completed",
    "failed": "failed",
}


def needs_status_check(raw: dict[str, Any]) -> bool:
    """True when the OpenAI shape cannot tell cancelled from failed: `failed` with code `cancelled` is
    either a cancel or a channel's own failure code of that name, so the unified query decides."""
    error = raw.get("error")
    return raw.get("status") == "failed" and isinstance(error, dict) and error.get("code") == "cancelled"


def video_from_openai(raw: dict[str, Any], *, status: str | None = None) -> Video:
    """A `Video` from the OpenAI dialect's Video object; `status` (the unified query's) overrides the
    mapped one. A status the SDK does not know yet is kept out: it raises, as pydantic would."""
    fields = dict(raw)
    word = str(fields.get("status"))
    fields["status"] = status or _FROM_OPENAI.get(word, word)
    seconds = fields.get("seconds")
    if isinstance(seconds, str) and seconds.strip().isdigit():
        fields["seconds"] = int(seconds)
    if "remixed_from_video_id" in fields:
        fields["remixed_from"] = fields.pop("remixed_from_video_id")
    fields.pop("object", None)
    return parse_model(Video, fields)


def parse_model(cls: type[M], data: Any) -> M:
    """`cls` from a decoded answer; an answer of another shape is a VidgateError that says so."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise VidgateError(
            f"Unexpected answer from the server for a {cls.__name__}: {where}: {first['msg']}"
        ) from exc


# Webhooks -------------------------------------------------------------------------------------------


class WebhookSecret(_Model):
    """The secret that signs a key's webhooks (`whsec_...`): pass it to
    `vidgate.signing.verify_webhook` on the receiver. Kept out of repr() so that logging the object
    does not leak it."""

    key_id: str
    secret: str = Field(repr=False)


# Admin API ------------------------------------------------------------------------------------------


class ApiKeyInfo(_Model):
    """A key as the admin API shows it (never its plaintext). Amounts are micro-credits; a limit of
    None is the gateway's default and 0 is unlimited for this key."""

    id: str
    name: str
    hint: str | None = None
    admin: bool = False
    created_at: int | None = None
    revoked_at: int | None = None
    balance: int | None = None  # None: unlimited
    held: int = 0
    available: int | None = None
    requests_per_minute: int | None = None
    creates_per_minute: int | None = None
    max_active_tasks: int | None = None
    allowed_models: list[str] | None = None  # None: every model


class CreatedKey(ApiKeyInfo):
    """A new key with its plaintext, which the server shows this once. Kept out of repr() so that
    logging the object does not leak it."""

    key: str = Field(repr=False)


class KeyPage(_Model):
    data: list[ApiKeyInfo]
    has_more: bool = False
    last_id: str | None = None


class LedgerEntry(_Model):
    id: int
    key_id: str
    task_id: str | None = None
    attempt: int = 1
    kind: str  # hold | capture | release | topup | adjust
    amount: int
    created_at: int | None = None
    reference: str | None = None
    note: str | None = None


class LedgerPage(_Model):
    data: list[LedgerEntry]
    has_more: bool = False
    last_id: int | None = None


class AdminTask(_Model):
    id: str
    video_id: str | None = None
    key_id: str | None = None
    key_name: str | None = None
    dialect: str | None = None
    model: str | None = None
    status: VideoStatus
    progress: int = 0
    channel: str | None = None
    size: str | None = None
    seconds: int | None = None
    created_at: int | None = None
    completed_at: int | None = None
    error: VideoError | None = None
    hold_amount: int | None = None
    charge_amount: int | None = None
    deleted: bool = False


class UpstreamAttempt(_Model):
    """One upstream create a task sent (docs/channels.md "Paying once")."""

    number: int
    channel: str
    idempotency_key: str | None = None
    sent_at: int | None = None
    outcome: str
    upstream_id: str | None = None
    error: VideoError | None = None
    settled_at: int | None = None


class AdminTaskDetail(AdminTask):
    attempts: list[UpstreamAttempt] = []


class AdminTaskPage(_Model):
    data: list[AdminTask]
    has_more: bool = False
    last_id: str | None = None


class UsageRow(_Model):
    key_id: str | None = None
    key_name: str | None = None
    model: str | None = None
    period_start: int | None = None
    tasks: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    seconds_completed: int = 0
    credits_charged: int = 0
    credits_refunded: int = 0


class Usage(_Model):
    start: int | None = None
    end: int | None = None
    interval: str | None = None
    data: list[UsageRow]


class ChannelCircuit(_Model):
    state: str
    failures: int = 0
    open_until: int | None = None
    last_error: str | None = None


class ChannelRecent(_Model):
    window_seconds: int | None = None
    completed: int = 0
    failed: int = 0
    error_rate: float | None = None


class ChannelStatus(_Model):
    name: str
    kind: str | None = None
    enabled: bool = True
    models: list[str] = []
    priority: int | None = None
    max_concurrent: int | None = None
    circuit: ChannelCircuit | None = None
    in_flight: int = 0
    recent: ChannelRecent | None = None
    pricing: dict[str, Any] | None = None


# Model catalog (`GET /v1/models`) -------------------------------------------------------------------


class ModelImages(_Model):
    """Which images a model takes: a first frame (one image), a last frame (`last_frame`), reference
    images (several in `images`), and at most `max` in `images` in all."""

    first_frame: bool = False
    last_frame: bool = False
    reference_images: int = 0
    max: int = 0


class ModelCapabilities(_Model):
    """What a model can do on this gateway: the union over the channels that serve it, so every value
    here is one that some channel honours, and a create that asks for anything else is a 400 naming the
    field."""

    durations: list[int] = []  # seconds
    resolutions: list[str] = []  # "480p", "720p", "1080p"
    aspect_ratios: list[str] = []  # "16:9", "9:16", "1:1", "4:3", "3:4", "21:9"
    sizes: list[str] = []  # every "WxH" it makes (those of resolutions x aspect ratios, and any other)
    # "none" (silent only), "optional" (with or without sound, as `generate_audio` asks) or "always".
    # A str, not a Literal: a word a later server adds must not make the whole catalog unreadable.
    audio: str = "none"
    audio_default: bool = False  # whether it makes sound when the create does not say
    images: ModelImages = Field(default_factory=ModelImages)
    negative_prompt: bool = False
    seed: bool = False
    enhance_prompt: bool = False


class ModelPricing(_Model):
    """What a create holds per clip, in credits (decimal text, e.g. "3.2"): `per_clip[resolution]
    [sound][seconds]`, where resolution is a word ("720p") or, for a size no word names, the size
    ("1024x1792"); sound is "silent" or "with_audio" (only the ones the model can make); seconds a
    duration as text ("8")."""

    currency: str = "credits"
    per_clip: dict[str, dict[str, dict[str, str]]] = {}

    def price(self, resolution: str, seconds: int, *, audio: bool = False) -> Decimal | None:
        """The credits one clip of `seconds` at `resolution`, with or without sound, costs; None where
        the catalog lists no such clip."""
        sound = "with_audio" if audio else "silent"
        text = self.per_clip.get(resolution, {}).get(sound, {}).get(str(seconds))
        return None if text is None else Decimal(text)


class ModelInfo(_Model):
    """One model the key may use (`client.models.list()` / `retrieve(id)`): OpenAI's model object
    (`id`, `created`, `owned_by`) with what it can do and what it costs. `pricing` is None when no
    channel charges for it."""

    id: str
    object: str = "model"
    created: int | None = None  # Unix seconds (a fixed date: vidgate cannot know a vendor's)
    owned_by: str | None = None  # the vendor of the channel that serves it first
    capabilities: ModelCapabilities = Field(default_factory=ModelCapabilities)
    pricing: ModelPricing | None = None
