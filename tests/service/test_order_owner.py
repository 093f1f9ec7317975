"""ERP order updates keep paid orders with their customer and open amounts right."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import Allocation, SalesOrder, StatementLine
from service import booking, ledger, master
from service.app import create_app
from service.booking import Part
from service.master import OrderCustomerConflict, OrderOverAllocation
from service.settings import Settings

AMOUNT = Decimal("240.00")
# An ERP export time before every payment these tests book.
EARLY_AS_OF = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


def _order(customer_id: str, open_amount: Decimal = AMOUNT) -> OrderRecord:
    return OrderRecord(
        order_id="SO-3001",
        customer_id=customer_id,
        order_date=date(2025, 6, 1),
        amount=AMOUNT,
        open_amount=open_amount,
    )


def _upsert(engine, customer_id: str, open_amount: Decimal = AMOUNT, as_of=None):
    with session_scope(engine) as session:
        return master.upsert_orders(
            session, [_order(customer_id, open_amount)], as_of=as_of
        )


def _seed(engine) -> None:
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [
                CustomerRecord("C12", "恒达机械有限公司"),
                CustomerRecord("C95", "Kestrel"),
            ],
        )
    _upsert(engine, "C12")


def _pay(
    engine,
    amount: Decimal = AMOUNT,
    ref: str = "L1",
    *,
    order_id: str = "SO-3001",
    customer_id: str = "C12",
) -> int:
    """Book a line that pays `amount` of an order and return its id."""
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref=ref,
            dedupe_key=f"k-{ref}",
            booking_date=date(2025, 6, 10),
            amount=amount,
            memo=order_id,
        )
        session.add(line)
        session.flush()
        part = Part("order", amount, customer_id, order_id)
        booking.confirm(session, line, [part], actor="clerk-a")
        return line.id


def _reverse(engine, line_id: int) -> None:
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.reverse(session, line, actor="clerk-a", reason="wrong customer")


def _stored(engine, order_id: str = "SO-3001") -> SalesOrder:
    with Session(engine) as session:
        return session.get(SalesOrder, order_id)


def _confirmed_at(engine, line_id: int):
    with Session(engine) as session:
        query = select(Allocation).where(Allocation.line_id == line_id)
        confirmed_at = session.exec(query).one().confirmed_at
    return confirmed_at.replace(tzinfo=UTC)


# Customer changes ------------------------------------------------------------------


def test_api_move_paid_order_is_conflict(client, keys, engine):
    _seed(engine)
    _pay(engine)
    row = {
        "order_id": "SO-3001",
        "customer_id": "C95",
        "order_date": "2025-06-01",
        "amount": "240.00",
        "open_amount": "240.00",
    }

    response = client.put("/v1/orders", headers=keys["erp"], json={"orders": [row]})

    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "order_customer_conflict"
    assert "order SO-3001 belongs to customer C12" in body["detail"]
    assert "240.00 booked to it" in body["detail"]
    assert "cannot move to customer C95" in body["detail"]
    assert "Reverse the allocations" in body["detail"]
    order_view = client.get("/v1/orders/SO-3001", headers=keys["erp"]).json()
    assert order_view["customer_id"] == "C12"
    assert order_view["open_amount"] == "0.00"
    assert order_view["status"] == "paid"


def test_api_move_unpaid_order_updates(client, keys, engine):
    _seed(engine)
    row = {
        "order_id": "SO-3001",
        "customer_id": "C95",
        "order_date": "2025-06-01",
        "amount": "240.00",
        "open_amount": "240.00",
    }

    response = client.put("/v1/orders", headers=keys["erp"], json={"orders": [row]})

    assert response.status_code == 200, response.text
    assert response.json()["updated"] == 1
    assert _stored(engine).customer_id == "C95"


def test_service_move_partly_paid_order_rejected(engine):
    _seed(engine)
    _pay(engine, Decimal("100.00"))

    with pytest.raises(OrderCustomerConflict, match="100.00 booked to it"):
        _upsert(engine, "C95")

    order = _stored(engine)
    assert order.customer_id == "C12"
    assert order.open_amount == Decimal("140.00")
    assert order.status == "partly_paid"


def test_service_move_after_reversal_succeeds(engine):
    _seed(engine)
    line_id = _pay(engine)
    _reverse(engine, line_id)

    report = _upsert(engine, "C95")

    assert report.updated == 1
    order = _stored(engine)
    assert order.customer_id == "C95"
    assert order.open_amount == AMOUNT


def test_service_same_customer_update_allowed(engine):
    _seed(engine)
    _pay(engine, Decimal("100.00"))

    _upsert(engine, "C12", as_of=_stored(engine).erp_as_of)

    order = _stored(engine)
    assert order.customer_id == "C12"
    assert order.open_amount == Decimal("140.00")


# Open amounts ------------------------------------------------------------------------


def test_open_takes_off_payments_after_as_of(engine):
    _seed(engine)
    line_id = _pay(engine, Decimal("100.00"))
    before_payment = _confirmed_at(engine, line_id) - timedelta(minutes=5)

    _upsert(engine, "C12", as_of=before_payment)

    assert _stored(engine).open_amount == Decimal("140.00")
    assert _stored(engine).status == "partly_paid"


def test_open_as_of_in_other_offset(engine):
    _seed(engine)
    line_id = _pay(engine, Decimal("100.00"))
    shanghai = timezone(timedelta(hours=8))
    before_payment = (_confirmed_at(engine, line_id) - timedelta(hours=1)).astimezone(
        shanghai
    )

    _upsert(engine, "C12", as_of=before_payment)

    assert _stored(engine).open_amount == Decimal("140.00")


def test_open_keeps_erp_amount_after_as_of(engine):
    _seed(engine)
    line_id = _pay(engine, Decimal("100.00"))
    after_payment = _confirmed_at(engine, line_id) + timedelta(minutes=5)

    _upsert(engine, "C12", Decimal("140.00"), as_of=after_payment)

    assert _stored(engine).open_amount == Decimal("140.00")


def test_open_gives_back_reversal_after_as_of(engine):
    _seed(engine)
    line_id = _pay(engine, Decimal("100.00"))
    # The ERP saw the payment but not its reversal.
    after_payment = _confirmed_at(engine, line_id) + timedelta(microseconds=1)
    _reverse(engine, line_id)

    _upsert(engine, "C12", Decimal("140.00"), as_of=after_payment)

    order = _stored(engine)
    assert order.open_amount == AMOUNT
    assert order.status == "open"


def test_open_below_booked_since_rejected(engine):
    _seed(engine)
    line_id = _pay(engine, Decimal("100.00"))
    before_payment = _confirmed_at(engine, line_id) - timedelta(minutes=5)

    with pytest.raises(OrderOverAllocation) as raised:
        _upsert(engine, "C12", Decimal("50.00"), as_of=before_payment)

    assert str(raised.value).startswith(
        "order SO-3001: the ERP's open amount is 50.00 as of "
        f"{before_payment.isoformat()}, but Cashmatch booked 100.00 to it after "
        "that. Nothing was changed."
    )
    order = _stored(engine)
    assert order.open_amount == Decimal("140.00")
    assert order.erp_open_amount == AMOUNT
    assert order.status == "partly_paid"


# Over-allocation ----------------------------------------------------------------------


def _paid_order_row(amount: str, open_amount: str, status: str = "open") -> dict:
    return {
        "order_id": "SO-9501",
        "customer_id": "C1",
        "order_date": "2024-12-01",
        "amount": amount,
        "open_amount": open_amount,
        "status": status,
    }


def _paid_order_record(
    amount: str, open_amount: str, status: str = "open"
) -> OrderRecord:
    return OrderRecord(
        order_id="SO-9501",
        customer_id="C1",
        order_date=date(2024, 12, 1),
        amount=Decimal(amount),
        open_amount=Decimal(open_amount),
        status=status,
    )


def _seed_paid_order(engine, paid: str = "727.00") -> int:
    """Load SO-9501 of 730.00 for C1 and book a line paying `paid` of it."""
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "恒达机械有限公司")])
        master.upsert_orders(
            session, [_paid_order_record("730.00", "730.00")], as_of=EARLY_AS_OF
        )
    return _pay(engine, Decimal(paid), "L9501", order_id="SO-9501", customer_id="C1")


def _upsert_paid_order(engine, *records: OrderRecord, as_of) -> master.LoadReport:
    with session_scope(engine) as session:
        return master.upsert_orders(session, list(records), as_of=as_of)


def _assert_paid_order_unchanged(engine, version: int = 2) -> None:
    order = _stored(engine, "SO-9501")
    assert order.amount == Decimal("730.00")
    assert order.erp_open_amount == Decimal("730.00")
    assert order.open_amount == Decimal("3.00")
    assert order.status == "partly_paid"
    assert order.version == version


def test_api_over_allocating_update_is_conflict(client, keys, engine):
    _seed_paid_order(engine)
    body = {
        "as_of": "2025-01-01T00:00:00",
        "orders": [_paid_order_row("500.00", "500.00")],
    }

    response = client.put("/v1/orders", headers=keys["erp"], json=body)

    assert response.status_code == 409, response.text
    assert response.json() == {
        "code": "order_over_allocation",
        "detail": "order SO-9501: the ERP's open amount is 500.00 as of "
        "2025-01-01T00:00:00+00:00, but Cashmatch booked 727.00 to it after "
        "that, and its amount 500.00 is less than the 727.00 confirmed on it in "
        "Cashmatch. Nothing was changed. Send the order again with an as_of "
        "after Cashmatch's bookings or with the right amount and open amount, "
        "or reverse its allocations and balance applications first",
    }
    order_view = client.get("/v1/orders/SO-9501", headers=keys["erp"]).json()
    assert order_view["amount"] == "730.00"
    assert order_view["open_amount"] == "3.00"
    assert order_view["status"] == "partly_paid"


def test_service_over_allocating_update_rejected(engine):
    _seed_paid_order(engine)

    with pytest.raises(OrderOverAllocation) as raised:
        _upsert_paid_order(
            engine, _paid_order_record("500.00", "500.00"), as_of=EARLY_AS_OF
        )

    message = str(raised.value)
    assert "order SO-9501: the ERP's open amount is 500.00 as of " in message
    assert "2025-01-01T00:00:00+00:00" in message
    assert "Cashmatch booked 727.00 to it after that" in message
    assert "its amount 500.00 is less than the 727.00 confirmed on it" in message
    assert "Nothing was changed" in message
    _assert_paid_order_unchanged(engine)


def test_service_rejection_changes_no_order(engine):
    _seed_paid_order(engine)
    other = OrderRecord(
        order_id="SO-9502",
        customer_id="C1",
        order_date=date(2024, 12, 2),
        amount=Decimal("80.00"),
        open_amount=Decimal("80.00"),
    )

    with pytest.raises(OrderOverAllocation):
        _upsert_paid_order(
            engine, other, _paid_order_record("730.00", "500.00"), as_of=EARLY_AS_OF
        )

    assert _stored(engine, "SO-9502") is None
    _assert_paid_order_unchanged(engine)


def test_service_as_of_after_bookings_accepted(engine):
    line_id = _seed_paid_order(engine)
    after_payment = _confirmed_at(engine, line_id) + timedelta(minutes=5)

    report = _upsert_paid_order(
        engine, _paid_order_record("730.00", "3.00"), as_of=after_payment
    )

    assert report.updated == 1
    order = _stored(engine, "SO-9501")
    assert order.erp_open_amount == Decimal("3.00")
    assert order.open_amount == Decimal("3.00")
    assert order.status == "partly_paid"


def test_service_amount_below_paid_rejected(engine):
    line_id = _seed_paid_order(engine)
    after_payment = _confirmed_at(engine, line_id) + timedelta(minutes=5)

    with pytest.raises(OrderOverAllocation) as raised:
        _upsert_paid_order(
            engine, _paid_order_record("700.00", "0.00"), as_of=after_payment
        )

    assert str(raised.value).startswith(
        "order SO-9501: its amount 700.00 is less than the 727.00 confirmed on "
        "it in Cashmatch. Nothing was changed."
    )
    _assert_paid_order_unchanged(engine)


def test_service_amount_counts_balance_applications(engine):
    _seed_paid_order(engine, paid="427.00")
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref="L-PRE",
            dedupe_key="k-L-PRE",
            booking_date=date(2025, 6, 9),
            amount=Decimal("300.00"),
        )
        session.add(line)
        session.flush()
        part = Part("balance", Decimal("300.00"), "C1")
        booking.confirm(session, line, [part], actor="clerk-a")
        ledger.apply_balance(
            session,
            customer_id="C1",
            amount=Decimal("300.00"),
            actor="clerk-a",
            today=date(2025, 6, 11),
            order_id="SO-9501",
        )
    as_of = datetime.now(UTC) + timedelta(minutes=5)

    with pytest.raises(OrderOverAllocation, match="the 727.00 confirmed on it"):
        _upsert_paid_order(engine, _paid_order_record("700.00", "0.00"), as_of=as_of)

    # The application was the order's third change.
    _assert_paid_order_unchanged(engine, version=3)


def test_service_cancel_below_booked_releases(engine):
    _seed_paid_order(engine)

    report = _upsert_paid_order(
        engine, _paid_order_record("730.00", "0.00", "cancelled"), as_of=EARLY_AS_OF
    )

    assert [(a.target, a.amount) for a in report.released] == [
        ("balance", Decimal("727.00"))
    ]
    assert _stored(engine, "SO-9501").status == "cancelled"
    with Session(engine) as session:
        assert ledger.balance(session, "C1") == Decimal("727.00")


def test_service_cancel_below_fees_rejected(engine):
    _seed_paid_order(engine, paid="700.00")
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref="L-FEE",
            dedupe_key="k-L-FEE",
            booking_date=date(2025, 6, 11),
            amount=Decimal("25.00"),
        )
        session.add(line)
        session.flush()
        parts = [
            Part("order", Decimal("25.00"), "C1", "SO-9501"),
            Part("fee", Decimal("2.00"), "C1", "SO-9501"),
        ]
        booking.confirm(session, line, parts, actor="clerk-a")
    cancelled = _paid_order_record("1.00", "0.00", "cancelled")

    with pytest.raises(OrderOverAllocation) as raised:
        _upsert_paid_order(engine, cancelled, as_of=EARLY_AS_OF)

    assert str(raised.value).startswith(
        "order SO-9501: its amount 1.00 is less than the 2.00 confirmed on it in "
        "Cashmatch. Nothing was changed."
    )
    # The order and fee parts of the second line each changed the order.
    _assert_paid_order_unchanged(engine, version=4)
