"""balances and holds bounded in the database; a webhook secret generation per key

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The cap as it was when this migration was written (vidgate.money.MAX_BALANCE, 10^12 credits in
# micro-credits), spelled out: a migration must build the same schema whatever the code says later.
_CAP = 10**18
_BALANCE_IN_BOUNDS = f"balance >= {-_CAP} AND balance <= {_CAP}"
_HELD_IN_BOUNDS = f"held >= 0 AND held <= {_CAP}"


def upgrade() -> None:
    _refuse_accounts_past_the_cap()
    # batch: SQLite adds a CHECK constraint only by copying the table (PostgreSQL alters it in place).
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        # 0: every existing key keeps a secret of its own from the start (derived, never stored).
        batch_op.add_column(
            sa.Column("webhook_secret_generation", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_check_constraint("ck_api_keys_balance_in_bounds", _BALANCE_IN_BOUNDS)
        batch_op.create_check_constraint("ck_api_keys_held_in_bounds", _HELD_IN_BOUNDS)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint("ck_api_keys_held_in_bounds", type_="check")
        batch_op.drop_constraint("ck_api_keys_balance_in_bounds", type_="check")
        batch_op.drop_column("webhook_secret_generation")


def _refuse_accounts_past_the_cap() -> None:
    """Keys that an overflow already took past the cap (before this release nothing stopped it) are
    named and the upgrade stops, the database as it was: a balance is the sum of its ledger entries,
    and no migration changes one behind the ledger's back. The operator corrects them first (with an
    `adjust` entry, on the release before this one) and upgrades again."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT id, balance, held FROM api_keys"
            f" WHERE NOT (balance IS NULL OR ({_BALANCE_IN_BOUNDS})) OR NOT ({_HELD_IN_BOUNDS})"
            " ORDER BY id"
        )
    )
    past = [f"{key_id} (balance {balance}, held {held})" for key_id, balance, held in rows]
    if past:
        raise RuntimeError(
            f"These API keys' balance or held is past the cap of ±{_CAP} micro-credits, which this "
            f"version enforces: {', '.join(past)}. Bring them within it with `vidgate keys adjust` on "
            "the version you run now, then upgrade again."
        )
