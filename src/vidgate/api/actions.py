"""What both dialects do to tasks: create (policy checks, idempotency, waking the worker), cancel, delete.

No upstream is called from here: the API process records what the client wants, and the worker does
the rest (a cancelled task's upstream job is stopped by the worker's cancel step), so API processes
need no upstream credentials.
"""

from __future__ import annotations

from typing import Any

from vidgate import metrics
from vidgate.api.observe import current_request_id, note_task
from vidgate.domain.requests import BLOB_REF_PREFIX, VideoSpec
from vidgate.domain.tasks import Task
from vidgate.errors import Conflict, InsufficientQuota, InvalidRequest, PermissionDenied, RateLimited
from vidgate.net.policy import FetchPolicy, UrlRejected, check_url_resolves_public
from vidgate.ratelimit import active_task_cap
from vidgate.runtime import Runtime
from vidgate.store.blobs import delete_task_files, upload_key
from vidgate.store.keys import ApiKey
from vidgate.store.task_rows import request_fingerprint

MAX_IDEMPOTENCY_KEY_CHARS = 255


async def check_urls_fetchable(
    runtime: Runtime, spec: VideoSpec, *, first_param: str = "images", indexed: bool = True
) -> None:
    """Refuse now (400) what the fetch policy would refuse later: bad scheme, a literal or resolved
    non-public address. The fetcher checks again at connect time; this only gives an early answer.
    A name that does not resolve passes here (DNS may be down for a moment); the fetch decides."""
    policy = FetchPolicy(allow_private=runtime.settings.fetch_allow_private)
    named = [
        (param, ref)
        for param, ref in spec.named_images(first_param, indexed)
        if ref[:5].lower() != "data:" and not ref.startswith(BLOB_REF_PREFIX)
    ]
    if spec.callback_url:
        named.append(("callback_url", spec.callback_url))
    if "character_url" in spec.extras:
        named.append(("character_url", str(spec.extras["character_url"])))
    for param, url in named:
        try:
            await check_url_resolves_public(url, policy, runtime.resolver)
        except UrlRejected as exc:
            raise InvalidRequest(
                f"'{param}' cannot be fetched: {exc.reason}", param=param, code="invalid_url"
            ) from exc


def check_idempotency_key(idempotency_key: str | None) -> None:
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters.", param="Idempotency-Key"
        )


def price_to_hold(runtime: Runtime, spec: VideoSpec, pinned_channel: str | None) -> int:
    """The most this task can cost (micro-credits): its price on the channel it is pinned to, else the
    highest price among the channels that could take it (which one will is decided at submit)."""
    route = spec.route
    pinned = runtime.catalog.by_name(pinned_channel) if pinned_channel else None
    return pinned.price(route) if pinned is not None else runtime.catalog.max_price(route)


async def create_task(
    runtime: Runtime,
    spec: VideoSpec,
    *,
    body: dict[str, Any],
    key: ApiKey,
    dialect: str,
    idempotency_key: str | None,
    remixed_from: str | None = None,
    task_id: str | None = None,
    pinned_channel: str | None = None,
    remix_upstream_id: str | None = None,
    upload: bytes | None = None,
) -> Task:
    """Save the task for `key`, holding its price on the key's balance in the same transaction (402
    when it cannot be covered; docs/accounts.md). `upload` (an `input_reference` file; `task_id`
    required with it) is stored under `task_id` before the task is saved, so the worker never finds the
    task without its input, and is removed again when no task of that id comes to be: an idempotent
    replay (answered with the first task, which has its own copy), a key reused with another body, or a
    refusal (the key's cap on tasks in flight, its balance; see `TaskStore.create`)."""
    check_idempotency_key(idempotency_key)
    if not key.may_use(spec.model):
        raise PermissionDenied(
            f"This API key may not use the model '{spec.model}'.", param="model", code="model_not_allowed"
        )
    uploaded_for: str | None = None
    if upload is not None:
        assert task_id is not None, "an upload is stored under the id of the task it is for"
        await runtime.blobs.put_bytes(upload, upload_key(task_id))
        uploaded_for = task_id
    now = runtime.clock.now_ms()
    try:
        task = await runtime.tasks.create(
            spec,
            owner=key.id,
            dialect=dialect,
            now=now,
            deadline_ms=round(runtime.settings.worker.task_deadline_seconds * 1000),
            idempotency_key=idempotency_key,
            request_hash=request_fingerprint({"dialect": dialect, **body}) if idempotency_key else None,
            remixed_from=remixed_from,
            task_id=task_id,
            pinned_channel=pinned_channel,
            remix_upstream_id=remix_upstream_id,
            max_active_tasks=active_task_cap(runtime.settings, key),
            request_id=current_request_id(),
            hold=price_to_hold(runtime, spec, pinned_channel),
        )
    except (Conflict, RateLimited, InsufficientQuota) as exc:
        if isinstance(exc, RateLimited):
            metrics.RATE_LIMITED.labels(limit="active_tasks").inc()
        elif isinstance(exc, InsufficientQuota):
            metrics.RATE_LIMITED.labels(limit="balance").inc()
        if uploaded_for is not None:
            await delete_task_files(runtime.blobs, uploaded_for)
        raise
    if uploaded_for is not None and task.id != uploaded_for:
        await delete_task_files(runtime.blobs, uploaded_for)  # the whole `uploads/<id>/`, not just its file
    note_task(task.id)
    runtime.wake_worker()
    return task


async def cancel_task(runtime: Runtime, ulid: str, *, owner: str) -> Task | None:
    """Cancel an active task; the worker then stops its upstream job. None: no such task."""
    task = await runtime.tasks.cancel(ulid, owner=owner, now=runtime.clock.now_ms())
    runtime.wake_worker()
    return task


async def delete_task(runtime: Runtime, ulid: str, *, owner: str) -> Task | None:
    """Hide the task from every read (cancelling it if unfinished, in the same compare-and-set) and
    remove everything stored for it. None: no such task."""
    task = await runtime.tasks.soft_delete(ulid, owner=owner, now=runtime.clock.now_ms())
    if task is not None:
        await delete_task_files(runtime.blobs, task.id)
        runtime.wake_worker()
    return task
