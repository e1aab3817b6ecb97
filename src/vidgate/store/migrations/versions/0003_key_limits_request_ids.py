"""per-key rate limits and a cap on tasks in flight; the request id that created a task

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL means "the gateway's default" (the settings), so existing keys keep today's behaviour.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requests_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("creates_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_active_tasks", sa.Integer(), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("request_id")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_active_tasks")
        batch_op.drop_column("creates_per_minute")
        batch_op.drop_column("requests_per_minute")
