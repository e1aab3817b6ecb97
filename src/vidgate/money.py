"""Credits: every amount is a whole number of micro-credits (1 credit = 1,000,000), never a float.

People write credits ("10", "0.25"); the database, the ledger and the API carry micro-credits. The
conversion is exact (Decimal), and more than six decimals is an error rather than a silent rounding.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICROS_PER_CREDIT = 1_000_000
# The largest amount taken anywhere (a top-up, an adjustment, an opening balance, a price): 10^12
# credits, far above any real balance and far below 2**63 (BIGINT).
MAX_MICROS = 10**12 * MICROS_PER_CREDIT
# The cap on a key's account (docs/accounts.md): its balance stays within ±MAX_BALANCE and what it holds
# within 0..MAX_BALANCE, enforced by the ledger's conditional UPDATEs and by CHECK constraints on
# api_keys (migration 0005). With every operand that small, balance + amount, held + amount and
# balance - held are at most 2 * 10^18 in size: no arithmetic on an account can reach 2**63 (a
# SQLite overflow would silently store a float; PostgreSQL would fail the statement).
MAX_BALANCE = MAX_MICROS
MAX_BALANCE_CREDITS = MAX_BALANCE // MICROS_PER_CREDIT


def parse_credits(text: str | int | float | Decimal, *, what: str = "amount") -> int:
    """'2.5' -> 2_500_000. Raises ValueError naming `what` for anything that is not a finite number of
    credits with at most six decimals (a float is read through its shortest repr: 0.1 is 0.1)."""
    if isinstance(text, bool):
        raise ValueError(f"{what} must be a number of credits, not {text!r}")
    try:
        value = Decimal(str(text).strip().replace("_", ""))
    except InvalidOperation:
        raise ValueError(f"{what} must be a number of credits such as 10 or 0.25, not {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number of credits, not {text!r}")
    micros = value * MICROS_PER_CREDIT
    if micros != micros.to_integral_value():
        raise ValueError(f"{what} has more than six decimals: {text!r}")
    if abs(micros) > MAX_MICROS:
        raise ValueError(f"{what} is too large: {text!r}")
    return int(micros)


def format_credits(micros: int | None) -> str:
    """2_500_000 -> '2.5'; None (no balance kept) -> 'unlimited'."""
    if micros is None:
        return "unlimited"
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_CREDIT)
    return f"{sign}{whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else f"{sign}{whole}"
