"""Invoice checks: payments and balances are counted once across invoices."""

from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord
from models.db import session_scope
from models.tables import AuditEvent, Invoice, StatementLine
from service import booking, ledger, master
from service.booking import Part
from service.ledger import InvoiceNotCovered


def _setup(engine, *, paid: str, balance: str = "0.00") -> None:
    """Order SO-1 of 1000.00 paid `paid` by a line; `balance` on the balance."""
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "恒达机械有限公司")])
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-1",
                    "C1",
                    date(2025, 6, 1),
                    Decimal("1000.00"),
                    Decimal("1000.00"),
                ),
                OrderRecord(
                    "SO-2", "C1", date(2025, 6, 2), Decimal("500.00"), Decimal("500.00")
                ),
            ],
        )
        parts = []
        if Decimal(paid):
            parts.append(Part("order", Decimal(paid), "C1", "SO-1"))
        if Decimal(balance):
            parts.append(Part("balance", Decimal(balance), "C1"))
        total = sum((p.amount for p in parts), Decimal("0.00"))
        line = StatementLine(
            account="default",
            line_ref="L1",
            dedupe_key="k-L1",
            booking_date=date(2025, 6, 10),
            amount=total,
        )
        session.add(line)
        session.flush()
        booking.confirm(session, line, parts, actor="clerk-a")


def _invoices(engine, *invoices: tuple[str, tuple[str, ...], str, str]):
    with session_scope(engine) as session:
        master.upsert_invoices(
            session,
            [
                InvoiceRecord(iid, orders, Decimal(amount), date.fromisoformat(day))
                for iid, orders, amount, day in invoices
            ],
        )


def _check(engine, invoice_id: str) -> ledger.InvoiceCheck:
    with Session(engine) as session:
        return ledger.check_invoice(session, invoice_id)


def test_ledger_invoice_two_on_one_order_share_payment(engine):
    _setup(engine, paid="600.00")
    _invoices(
        engine,
        ("INV-1", ("SO-1",), "400.00", "2025-06-15"),
        ("INV-2", ("SO-1",), "400.00", "2025-06-16"),
    )

    first = _check(engine, "INV-1")
    second = _check(engine, "INV-2")

    assert (first.paid_to_orders, first.covered) == (Decimal("600.00"), True)
    assert second.already_invoiced == Decimal("400.00")
    assert second.paid_to_orders == Decimal("200.00")
    assert second.covered is False
    assert second.shortfall == Decimal("200.00")


def test_ledger_invoice_balance_counted_once(engine):
    _setup(engine, paid="0.00", balance="300.00")
    _invoices(
        engine,
        ("INV-1", ("SO-2",), "300.00", "2025-06-15"),
        ("INV-2", ("SO-1",), "300.00", "2025-06-16"),
    )

    first = _check(engine, "INV-1")
    second = _check(engine, "INV-2")

    assert (first.prepayment_balance, first.covered) == (Decimal("300.00"), True)
    assert second.prepayment_balance == Decimal("0.00")
    assert second.shortfall == Decimal("300.00")


def test_ledger_invoice_issue_order_decides(engine):
    _setup(engine, paid="400.00")
    _invoices(
        engine,
        ("INV-B", ("SO-1",), "400.00", "2025-06-16"),
        ("INV-A", ("SO-1",), "400.00", "2025-06-15"),
    )

    assert _check(engine, "INV-A").covered is True
    assert _check(engine, "INV-B").covered is False


def test_ledger_invoice_of_cancelled_order_counts_balance(engine):
    _setup(engine, paid="1000.00")
    with session_scope(engine) as session:
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-1",
                    "C1",
                    date(2025, 6, 1),
                    Decimal("1000.00"),
                    Decimal("1000.00"),
                    status="cancelled",
                )
            ],
        )
    _invoices(engine, ("INV-1", ("SO-1",), "1000.00", "2025-06-15"))

    check = _check(engine, "INV-1")

    assert check.paid_to_orders == Decimal("0.00")
    assert check.prepayment_balance == Decimal("1000.00")
    assert check.covered is True


def _upsert_and_check(engine, policy: str) -> list[ledger.InvoiceCheck]:
    with session_scope(engine) as session:
        master.upsert_invoices(
            session, [InvoiceRecord("INV-1", ("SO-1",), Decimal("1000.00"), None)]
        )
        return ledger.check_new_invoices(session, ["INV-1"], policy=policy, actor="erp")


def _audit_actions(engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent.action)).all())


def test_ledger_invoice_beyond_paid_flagged(engine):
    _setup(engine, paid="400.00")

    [check] = _upsert_and_check(engine, "flag")

    assert check.shortfall == Decimal("600.00")
    with Session(engine) as session:
        assert session.get(Invoice, "INV-1") is not None
    assert "invoice_flagged" in _audit_actions(engine)


def test_ledger_invoice_beyond_paid_rejected(engine):
    _setup(engine, paid="400.00")

    with pytest.raises(InvoiceNotCovered, match="INV-1 short by 600.00"):
        _upsert_and_check(engine, "reject")

    with Session(engine) as session:
        assert session.get(Invoice, "INV-1") is None
    assert "invoice_flagged" not in _audit_actions(engine)
