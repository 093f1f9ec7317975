from decimal import Decimal

import pytest
from sqlmodel import Session, select

from models.money import from_cents, to_cents, to_money
from models.tables import Customer, LedgerEntry


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("12.5", Decimal("12.50"), id="one-place"),
        pytest.param(7, Decimal("7.00"), id="int"),
        pytest.param(Decimal("-0.01"), Decimal("-0.01"), id="negative-cent"),
    ],
)
def test_to_money_accepts_exact_values(value, expected):
    assert to_money(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(1.5, "float", id="float"),
        pytest.param("1.005", "more than two decimal places", id="three-places"),
        pytest.param("abc", "not an amount", id="text"),
        pytest.param("NaN", "not a finite amount", id="nan"),
    ],
)
def test_to_money_rejects_inexact_values(value, match):
    with pytest.raises(ValueError, match=match):
        to_money(value)


def test_to_money_negative_zero_is_zero():
    assert str(to_money("-0.00")) == "0.00"
    assert str(to_money(Decimal("-0"))) == "0.00"


def test_cents_round_trip():
    assert from_cents(to_cents(Decimal("102.43"))) == Decimal("102.43")
    assert to_cents(Decimal("-12.50")) == -1250


def test_money_column_sums_exactly(engine):
    with Session(engine) as session:
        session.add(Customer(customer_id="C1", name="恒达机械"))
        session.flush()
        for amount in ("102.43", "-2.50", "-63.45", "-36.48"):
            session.add(
                LedgerEntry(customer_id="C1", kind="receipt", amount=Decimal(amount))
            )
        session.commit()

        amounts = session.exec(select(LedgerEntry.amount)).all()

    assert all(isinstance(amount, Decimal) for amount in amounts)
    assert sum(amounts) == Decimal("0.00")
