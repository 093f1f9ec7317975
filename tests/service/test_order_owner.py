"""ERP order updates keep paid orders with their customer and open amounts right."""

from __future__ import annotations

from datetime import UTC, date, timedelta, timezone
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import Allocation, SalesOrder, StatementLine
from service import booking, master
from service.app import create_app
from service.booking import Part
from service.master import OrderCustomerConflict
from service.settings import Settings

AMOUNT = Decimal("240.00")


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


def _pay(engine, amount: Decimal = AMOUNT, ref: str = "L1") -> int:
    """Book a line of C12's that pays `amount` of SO-3001 and return its id."""
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref=ref,
            dedupe_key=f"k-{ref}",
            booking_date=date(2025, 6, 10),
            amount=amount,
            memo="SO-3001",
        )
        session.add(line)
        session.flush()
        booking.confirm(
            session, line, [Part("order", amount, "C12", "SO-3001")], actor="clerk-a"
        )
        return line.id


def _reverse(engine, line_id: int) -> None:
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.reverse(session, line, actor="clerk-a", reason="wrong customer")


def _stored(engine) -> SalesOrder:
    with Session(engine) as session:
        return session.get(SalesOrder, "SO-3001")


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


def test_open_never_below_zero(engine):
    _seed(engine)
    line_id = _pay(engine, Decimal("100.00"))
    before_payment = _confirmed_at(engine, line_id) - timedelta(minutes=5)

    _upsert(engine, "C12", Decimal("50.00"), as_of=before_payment)

    order = _stored(engine)
    assert order.open_amount == Decimal("0.00")
    assert order.status == "paid"
