"""upstream_attempts: one row per upstream create a task sent, written before it goes out; poll
failures counted apart from the circuit's create failures

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


_UNKNOWN_IN_FLIGHT = """
    INSERT INTO upstream_attempts (task_id, number, channel, idempotency_key, sent_at, outcome, error_code)
    SELECT id, 1, channel, id || '-' || CAST(submissions AS VARCHAR(12)), submit_intent_at, 'unknown',
           'upgraded_in_flight'
    FROM tasks
    WHERE submit_intent_at IS NOT NULL AND upstream_id IS NULL AND channel IS NOT NULL
      AND status IN ('pending', 'processing')
"""


def upgrade() -> None:
    op.create_table(
        "upstream_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=26), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("upstream_id", sa.String(length=255), nullable=True),
        sa.Column("memo", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("settled_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_upstream_attempts"),
        sa.UniqueConstraint("task_id", "number", name="uq_upstream_attempts_task_id_number"),
        sa.UniqueConstraint("channel", "upstream_id", name="uq_upstream_attempts_channel_upstream_id"),
    )
    with op.batch_alter_table("channel_health", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("poll_failures", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    # A task whose submit was in flight during the upgrade has its intent saved and no job id: record
    # that create as one of unknown outcome, so the worker looks for its job (or waits) rather than take
    # the missing record for "never sent" and pay again.
    op.execute(_UNKNOWN_IN_FLIGHT)


def downgrade() -> None:
    with op.batch_alter_table("channel_health", schema=None) as batch_op:
        batch_op.drop_column("poll_failures")
    op.drop_table("upstream_attempts")
