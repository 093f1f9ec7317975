from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.errors import AllocationConflict
from models.tables import Allocation, LedgerEntry, SalesOrder, StatementLine
from service import booking, master
from service.booking import InvalidAllocation, Part


def _setup(engine, *orders: tuple[str, str, str]):
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [CustomerRecord("C1", "恒达机械有限公司", bank_accounts=("6222001",))],
        )
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    order_id=order_id,
                    customer_id="C1",
                    order_date=date.fromisoformat(day),
                    amount=Decimal(amount),
                    open_amount=Decimal(amount),
                )
                for order_id, amount, day in orders
            ],
        )


def _line(engine, amount: str, memo: str, ref: str = "L1") -> int:
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref=ref,
            dedupe_key=f"k-{ref}",
            booking_date=date(2025, 6, 10),
            amount=Decimal(amount),
            memo=memo,
            counterparty_account="6222001",
        )
        session.add(line)
        session.flush()
        return line.id


def _confirm(engine, line_id, parts, **kwargs):
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        return booking.confirm(session, line, parts, actor="clerk-a", **kwargs)


def _open_amount(engine, order_id) -> Decimal:
    with Session(engine) as session:
        return session.get(SalesOrder, order_id).open_amount


def test_confirm_instalments_settle_order(engine):
    _setup(engine, ("SO-3001", "240.00", "2025-06-01"))
    first = _line(engine, "100.00", "SO-3001", "L1")
    second = _line(engine, "140.00", "SO-3001", "L2")

    _confirm(engine, first, [Part("order", Decimal("100.00"), "C1", "SO-3001")])
    assert _open_amount(engine, "SO-3001") == Decimal("140.00")

    _confirm(engine, second, [Part("order", Decimal("140.00"), "C1", "SO-3001")])
    with Session(engine) as session:
        order = session.get(SalesOrder, "SO-3001")
    assert order.open_amount == Decimal("0.00")
    assert order.status == "paid"


def test_confirm_twice_is_over_allocation(engine):
    _setup(
        engine, ("SO-9601", "730.00", "2025-06-01"), ("SO-9602", "730.00", "2025-06-02")
    )
    line_id = _line(engine, "730.00", "SO-9601")
    _confirm(engine, line_id, [Part("order", Decimal("730.00"), "C1", "SO-9601")])

    with pytest.raises(AllocationConflict, match="over-allocate it by 730.00"):
        _confirm(engine, line_id, [Part("order", Decimal("730.00"), "C1", "SO-9602")])

    assert _open_amount(engine, "SO-9602") == Decimal("730.00")
    with Session(engine) as session:
        confirmed = session.exec(
            select(Allocation).where(Allocation.status == "confirmed")
        ).all()
    assert len(confirmed) == 1


def test_confirm_stale_version_is_conflict(engine):
    _setup(engine, ("SO-9501", "730.00", "2025-06-01"))
    line_id = _line(engine, "730.00", "SO-9501")

    with pytest.raises(AllocationConflict, match="reload it"):
        _confirm(
            engine,
            line_id,
            [Part("order", Decimal("730.00"), "C1", "SO-9501")],
            expected_version=7,
        )
    assert _open_amount(engine, "SO-9501") == Decimal("730.00")


def test_confirm_beyond_open_amount_changes_nothing(engine):
    _setup(engine, ("SO-1", "100.00", "2025-06-01"))
    line_id = _line(engine, "150.00", "SO-1")

    with pytest.raises(AllocationConflict, match="cannot take 150.00"):
        _confirm(engine, line_id, [Part("order", Decimal("150.00"), "C1", "SO-1")])

    assert _open_amount(engine, "SO-1") == Decimal("100.00")
    with Session(engine) as session:
        assert session.get(StatementLine, line_id).status == "new"


def test_confirm_split_must_equal_line(engine):
    _setup(engine, ("SO-1", "100.00", "2025-06-01"))
    line_id = _line(engine, "150.00", "SO-1")

    with pytest.raises(InvalidAllocation, match="add up to 100.00, the line is 150.00"):
        _confirm(engine, line_id, [Part("order", Decimal("100.00"), "C1", "SO-1")])


def test_decimal_drift_balance_settles_exactly(engine):
    _setup(
        engine,
        ("SO-1", "2.50", "2025-06-01"),
        ("SO-2", "63.45", "2025-06-02"),
        ("SO-3", "36.48", "2025-06-03"),
    )
    line_id = _line(engine, "102.43", "")
    parts = [
        Part("order", Decimal("2.50"), "C1", "SO-1"),
        Part("order", Decimal("63.45"), "C1", "SO-2"),
        Part("order", Decimal("36.48"), "C1", "SO-3"),
    ]

    _confirm(engine, line_id, parts)

    for order_id in ("SO-1", "SO-2", "SO-3"):
        assert _open_amount(engine, order_id) == Decimal("0.00")


def test_reverse_reopens_order_and_balance(engine):
    _setup(engine, ("SO-1", "100.00", "2025-06-01"))
    line_id = _line(engine, "130.00", "SO-1")
    _confirm(
        engine,
        line_id,
        [
            Part("order", Decimal("100.00"), "C1", "SO-1"),
            Part("balance", Decimal("30.00"), "C1"),
        ],
    )
    with Session(engine) as session:
        assert booking.balance_of(session, "C1") == Decimal("30.00")

    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.reverse(session, line, actor="clerk-b", reason="wrong customer")

    with Session(engine) as session:
        order = session.get(SalesOrder, "SO-1")
        assert order.open_amount == Decimal("100.00")
        assert order.status == "open"
        assert booking.balance_of(session, "C1") == Decimal("0.00")
        entries = session.exec(select(LedgerEntry)).all()
        assert [e.kind for e in entries] == ["receipt", "reversal"]
