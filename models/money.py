"""Money as Decimal in Python and integer minor units in the database.

Integer cents are exact on SQLite and PostgreSQL alike, so sums computed by
the database never drift the way binary floats do.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from sqlalchemy import BigInteger
from sqlalchemy.types import TypeDecorator

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_money(value: object) -> Decimal:
    """Convert a Decimal, int or numeric string to a two-place Decimal.

    Raises ValueError for floats, non-numbers and values with more than two
    decimal places, because silently rounding money hides errors.
    """
    if isinstance(value, float):
        raise ValueError(f"money must not be a float, got {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if rounded != amount:
        raise ValueError(f"amount {value} has more than two decimal places")
    # Decimal keeps the sign of a negative zero, which would show as -0.00.
    return abs(rounded) if rounded == 0 else rounded


def to_cents(value: Decimal) -> int:
    """Return the integer number of cents in a two-place amount."""
    return int(to_money(value) * 100)


def from_cents(cents: int) -> Decimal:
    """Return the two-place Decimal for an integer number of cents."""
    return (Decimal(int(cents)) / 100).quantize(CENT)


class Money(TypeDecorator):
    """A column type storing Decimal money as BIGINT cents."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return to_cents(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return from_cents(value)
