"""accounts: a balance, holds and allowed models per key; the price held and charged per task; the ledger

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The ledger is append-only (store/ledger.py): the database itself refuses to change or remove an entry,
# whatever code (or person with a SQL prompt) tries; a correction is a new `adjust` entry.
_REFUSAL = "ledger entries are never changed or deleted; add an adjust entry instead"
_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER ledger_entries_no_{change.lower()} BEFORE {change} ON ledger_entries
        BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END"""
    for change in ("UPDATE", "DELETE")
]
_PG_FUNCTION = f"""CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '{_REFUSAL}'; END $$"""
_PG_TRIGGER = """CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()"""


def upgrade() -> None:
    # balance NULL = unlimited, so every existing key keeps working exactly as before.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("balance", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("held", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
        batch_op.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("charge_amount", sa.BigInteger(), nullable=True))
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=26), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name="fk_ledger_entries_key_id_api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("task_id", "attempt", "kind", name="uq_ledger_entries_task_id_attempt_kind"),
        sa.UniqueConstraint("key_id", "reference", name="uq_ledger_entries_key_id_reference"),
    )
    op.create_index("ix_ledger_entries_key_id_id", "ledger_entries", ["key_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_key_id_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_entries_append_only()")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("charge_amount")
        batch_op.drop_column("hold_amount")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("allowed_models")
        batch_op.drop_column("held")
        batch_op.drop_column("balance")
