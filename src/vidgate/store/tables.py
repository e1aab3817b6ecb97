"""Table definitions (SQLAlchemy Core). The migrations in `migrations/versions` create these.

Times are integer Unix milliseconds (BIGINT) everywhere: identical on SQLite and PostgreSQL.
The tasks table is also the work queue: `next_run_at`, `lease_owner` and `lease_expires_at` say who
may work on a task and when; `version` fences every write.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from vidgate.money import MAX_BALANCE

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)
# The rows the claim query looks at: active tasks, and ended ones with a step left (domain/lifecycle.py
# AFTER_THE_END; a test holds the two together). Spelled out: the migrations' index says the same.
DUE_WHERE = "status IN ('pending', 'processing') OR step IN ('notify', 'cancel')"
# The rows that may occupy a slot of their channel (max_concurrent) and are counted at admission.
OWNER_ACTIVE_WHERE = "status IN ('pending', 'processing')"
ACTIVE_ON_CHANNEL_WHERE = "channel IS NOT NULL AND status IN ('pending', 'processing')"
# A key's balance (NULL: unlimited, which passes) and what it holds, within the cap.
BALANCE_IN_BOUNDS = f"balance >= {-MAX_BALANCE} AND balance <= {MAX_BALANCE}"
HELD_IN_BOUNDS = f"held >= 0 AND held <= {MAX_BALANCE}"

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(16), nullable=False),  # "vg-ab12…" so operators can tell keys apart
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    # Per-key overrides of the rate-limit settings; NULL = the gateway's default.
    Column("requests_per_minute", Integer, nullable=True),
    Column("creates_per_minute", Integer, nullable=True),
    Column("max_active_tasks", Integer, nullable=True),  # tasks pending or processing at once
    # The account (docs/accounts.md), in micro-credits. balance NULL = unlimited: no balance is kept, but
    # holds and captures are still entered, so usage is known. held = the sum of the key's open holds.
    Column("balance", BigInteger, nullable=True),
    Column("held", BigInteger, nullable=False, server_default=text("0")),
    Column("allowed_models", JSON, nullable=True),  # NULL = every model the gateway serves
    # Which of the key's webhook secrets is current (signing.key_webhook_secret): the secret is derived
    # from the server's secret, the key's id and this number, so none is stored; a rotation adds 1.
    Column("webhook_secret_generation", Integer, nullable=False, server_default=text("0")),
    # The cap on an account (vidgate.money.MAX_BALANCE): no arithmetic on it can come near 2**63.
    CheckConstraint(BALANCE_IN_BOUNDS, name="ck_api_keys_balance_in_bounds"),
    CheckConstraint(HELD_IN_BOUNDS, name="ck_api_keys_held_in_bounds"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(26), primary_key=True),  # lowercase ULID
    Column("owner", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("dialect", String(16), nullable=False),  # unified | openai: which id form to show by default
    # What was asked for
    Column("model", String(100), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("images", JSON, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("seconds", Integer, nullable=False),
    Column("orientation", String(16), nullable=False),
    Column("size_label", String(16), nullable=False),
    Column("watermark_mode", String(16), nullable=False),
    Column("private", Boolean, nullable=False),
    Column("input", JSON, nullable=False),  # echo of the accepted request (detail.input)
    Column("callback_url", Text, nullable=True),
    Column("callback_attempts", Integer, nullable=False, server_default=text("0")),
    Column("remixed_from", String(26), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("request_id", String(64), nullable=True),  # the create request's id, carried into worker logs
    # Where it stands
    Column("status", String(16), nullable=False),
    Column("step", String(16), nullable=False),
    Column("progress", Integer, nullable=False, server_default=text("0")),
    Column("created_at", BigInteger, nullable=False),
    Column("status_update_time", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("last_error", JSON, nullable=True),  # the latest retried failure {code, message}, while retrying
    # Worker bookkeeping
    Column("next_run_at", BigInteger, nullable=False),
    Column("deadline_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("version", Integer, nullable=False, server_default=text("0")),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("lease_token", String(32), nullable=True),  # new on every claim: fences heartbeats and writes
    # The channel's side
    Column("channel", String(64), nullable=True),
    Column("upstream_id", String(255), nullable=True),
    Column("submissions", Integer, nullable=False, server_default=text("0")),
    Column("submit_intent_at", BigInteger, nullable=True),
    Column("remix_upstream_id", String(255), nullable=True),
    Column("inputs", JSON, nullable=True),  # normalised input images in our storage (after ingest)
    Column("upstream_state", JSON, nullable=True),  # small provider memo (poll pace, result URL)
    Column("watermarked", Boolean, nullable=True),
    # Our copy of the result
    Column("video_key", String(255), nullable=True),
    Column("thumbnail_key", String(255), nullable=True),
    Column("spritesheet_key", String(255), nullable=True),
    Column("video_bytes", BigInteger, nullable=True),
    Column("video_sha256", String(64), nullable=True),
    Column("media_deleted_at", BigInteger, nullable=True),
    Column("media_deleted_reason", String(200), nullable=True),
    Column("deleted_at", BigInteger, nullable=True),  # DELETE /v1/videos: hidden from every read
    # Billing (store/ledger.py): the most the task may cost, held at create (NULL: nothing held), and
    # what it costs on the channel it was admitted to (<= the hold; NULL: the hold).
    Column("hold_amount", BigInteger, nullable=True),
    Column("charge_amount", BigInteger, nullable=True),
    UniqueConstraint("owner", "idempotency_key"),
    Index("ix_tasks_owner_id", "owner", "id"),
    # The claim query's index: only active rows matter, so keep it partial where the engine can.
    Index(
        "ix_tasks_due",
        "next_run_at",
        postgresql_where=text(DUE_WHERE),
        sqlite_where=text(DUE_WHERE),
    ),
    # The cap on a key's tasks in flight counts these at every create (store/tasks/creates.py).
    Index(
        "ix_tasks_owner_active",
        "owner",
        postgresql_where=text(OWNER_ACTIVE_WHERE),
        sqlite_where=text(OWNER_ACTIVE_WHERE),
    ),
    Index(
        "ix_tasks_channel_active",
        "channel",
        postgresql_where=text(ACTIVE_ON_CHANNEL_WHERE),
        sqlite_where=text(ACTIVE_ON_CHANNEL_WHERE),
    ),
)

# Per-channel circuit breaker state, shared by every worker process (one row per channel name, made on
# first use). The row is also locked while a task is admitted to its channel, so `max_concurrent`
# holds across processes.
channel_health = Table(
    "channel_health",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("state", String(16), nullable=False, server_default=text("'closed'")),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("open_until", BigInteger, nullable=True),
    Column("probe_until", BigInteger, nullable=True),
    Column("last_error", String(300), nullable=True),
    # Polls are counted apart from creates: a job in flight answering its polls says nothing about
    # whether new jobs are accepted, so polls never open or close the circuit.
    Column("poll_failures", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", BigInteger, nullable=False),
)

task_events = Table(
    "task_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(26), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),  # created | status | step | retry | lease_lost | ...
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=True),
    Column("step", String(16), nullable=True),
    Column("worker", String(128), nullable=True),
    Column("message", Text, nullable=True),
)

# The ledger: every movement of a key's credits, never updated or deleted (a correction is a new entry).
# A task's hold is resolved by a capture and/or a release with hold = capture + release; the unique
# (task, attempt, kind) makes applying one twice impossible. A top-up's `reference` (its idempotency key)
# is unique per key. NULLs are distinct in both constraints, so top-ups (no task) and entries without a
# reference never collide.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column(
        "task_id", String(26), nullable=True
    ),  # no FK: an entry outlives nothing, and tasks are never purged
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("kind", String(16), nullable=False),  # hold | capture | release | topup | adjust
    Column("amount", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("reference", String(255), nullable=True),
    Column("note", Text, nullable=True),
    UniqueConstraint("task_id", "attempt", "kind"),
    UniqueConstraint("key_id", "reference"),
    Index("ix_ledger_entries_key_id_id", "key_id", "id"),
)

# Every upstream create a task sent (docs/channels.md "Paid submits"): written before the request goes
# out (outcome `pending`, `sent_at` on the database's clock) and settled after it. NOT fenced by the
# task's lease: whoever learnt a job's id may always record it, so no job a task caused is ever lost.
# A job belongs to one task at most: (channel, upstream_id) is unique (NULLs are distinct).
upstream_attempts = Table(
    "upstream_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(26), nullable=False),  # no FK: tasks are never purged, attempts outlive nothing
    Column("number", Integer, nullable=False),  # 1, 2, ... per task
    Column("channel", String(64), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("sent_at", BigInteger, nullable=False),
    # pending (sent, no answer yet) | accepted | refused (proven: no job) | unknown | adopted (a lookup
    # found its job) | not_found (a lookup window passed without the job: none was made)
    Column("outcome", String(16), nullable=False),
    Column("upstream_id", String(255), nullable=True),
    Column("memo", JSON, nullable=True),  # the provider's memo of an accepted job, to poll it by
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("settled_at", BigInteger, nullable=True),
    UniqueConstraint("task_id", "number"),
    UniqueConstraint("channel", "upstream_id"),
)
