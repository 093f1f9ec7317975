"""Voiding an import batch over the API."""

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.tables import AuditEvent, SalesOrder, StatementLine
from service.app import create_app
from service.settings import Settings

STATEMENT = (
    "line_ref,booking_date,amount,currency,counterparty_name,"
    "counterparty_account,memo,bank_reference\n"
    "V1,2025-06-10,730.00,CNY,恒达机械有限公司,6222001,SO-9501,\n"
)


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    with TestClient(create_app(settings, engine=engine, review_page=False)) as client:
        yield client


def _seed(client, headers) -> int:
    customers = [{"customer_id": "C1", "name": "恒达机械有限公司"}]
    orders = [
        {
            "order_id": "SO-9501",
            "customer_id": "C1",
            "order_date": "2025-06-01",
            "amount": "730.00",
            "open_amount": "730.00",
        }
    ]
    client.put("/v1/customers", headers=headers, json={"customers": customers})
    client.put("/v1/orders", headers=headers, json={"orders": orders})
    response = client.post(
        "/v1/statements",
        headers=headers,
        files={"file": ("statement.csv", STATEMENT.encode(), "text/csv")},
    )
    assert response.status_code == 201, response.text
    return response.json()["batch_ids"][0]


def test_void_batch_reverses_its_bookings(client, keys, engine):
    batch_id = _seed(client, keys["admin"])

    response = client.post(
        f"/v1/import-batches/{batch_id}/void",
        headers=keys["admin"],
        json={"reason": "wrong account"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["lines_voided"] == 1
    with Session(engine) as session:
        line = session.exec(select(StatementLine)).one()
        order = session.get(SalesOrder, "SO-9501")
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "void")
        ).all()
    assert line.status == "voided"
    assert order.open_amount == Decimal("730.00")
    assert [event.actor for event in events] == ["admin-1"]


def test_void_twice_is_409(client, keys):
    batch_id = _seed(client, keys["admin"])
    path = f"/v1/import-batches/{batch_id}/void"
    client.post(path, headers=keys["admin"], json={"reason": "wrong account"})

    response = client.post(path, headers=keys["admin"], json={"reason": "again"})

    assert response.status_code == 409
    assert response.json()["code"] == "batch_already_voided"


def test_void_unknown_batch_is_404(client, keys):
    response = client.post(
        "/v1/import-batches/999/void", headers=keys["admin"], json={"reason": "x"}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "batch_not_found"


def test_void_needs_admin_role(client, keys):
    response = client.post(
        "/v1/import-batches/1/void", headers=keys["erp"], json={"reason": "x"}
    )

    assert response.status_code == 403
