"""upstream channels: lease tokens, submit intents, the cancel step, channel health

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD_DUE = "status IN ('pending', 'processing') OR step = 'notify'"
NEW_DUE = "status IN ('pending', 'processing') OR step IN ('notify', 'cancel')"
ACTIVE_ON_CHANNEL = "channel IS NOT NULL AND status IN ('pending', 'processing')"


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("submissions", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("submit_intent_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("remix_upstream_id", sa.String(length=255), nullable=True))
        batch_op.drop_index("ix_tasks_due", postgresql_where=sa.text(OLD_DUE), sqlite_where=sa.text(OLD_DUE))
        batch_op.create_index(
            "ix_tasks_due", ["next_run_at"], postgresql_where=sa.text(NEW_DUE), sqlite_where=sa.text(NEW_DUE)
        )
        batch_op.create_index(
            "ix_tasks_channel_active",
            ["channel"],
            postgresql_where=sa.text(ACTIVE_ON_CHANNEL),
            sqlite_where=sa.text(ACTIVE_ON_CHANNEL),
        )
    # Tasks a worker held under 0001 carry no token: their leases simply run out and are re-claimed.
    op.create_table(
        "channel_health",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'closed'"), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("open_until", sa.BigInteger(), nullable=True),
        sa.Column("probe_until", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_health")),
    )


def downgrade() -> None:
    op.drop_table("channel_health")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tasks_channel_active",
            postgresql_where=sa.text(ACTIVE_ON_CHANNEL),
            sqlite_where=sa.text(ACTIVE_ON_CHANNEL),
        )
        batch_op.drop_index("ix_tasks_due", postgresql_where=sa.text(NEW_DUE), sqlite_where=sa.text(NEW_DUE))
        batch_op.create_index(
            "ix_tasks_due", ["next_run_at"], postgresql_where=sa.text(OLD_DUE), sqlite_where=sa.text(OLD_DUE)
        )
        batch_op.drop_column("remix_upstream_id")
        batch_op.drop_column("submit_intent_at")
        batch_op.drop_column("submissions")
        batch_op.drop_column("lease_token")
