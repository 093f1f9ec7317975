"""Retries with an Idempotency-Key compare the JSON value, not its bytes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.tables import SalesOrder
from service.api.deps import canonical_json
from service.app import create_app
from service.settings import Settings

CSV_HEADER = (
    "line_ref,booking_date,amount,currency,counterparty_name,"
    "counterparty_account,memo,bank_reference\n"
)
ORDERS = {
    "as_of": "2025-06-01T08:00:00Z",
    "orders": [
        {
            "order_id": "SO-1",
            "customer_id": "C1",
            "order_date": "2025-06-01",
            "amount": 240.00,
            "open_amount": "240.00",
        }
    ],
}


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def erp(client, keys) -> dict[str, str]:
    customers = {"customers": [{"customer_id": "C1", "name": "恒达机械有限公司"}]}
    response = client.put("/v1/customers", headers=keys["erp"], json=customers)
    assert response.status_code == 200
    return {**keys["erp"], "Idempotency-Key": "orders-1"}


def _put(client, headers, text: str):
    headers = {**headers, "Content-Type": "application/json"}
    return client.put("/v1/orders", headers=headers, content=text.encode())


def _order_version(engine) -> int:
    with Session(engine) as session:
        return session.get(SalesOrder, "SO-1").version


def test_retry_compact_json_is_replayed(client, erp, engine):
    first = _put(client, erp, json.dumps(ORDERS, indent=2))

    second = _put(client, erp, json.dumps(ORDERS, separators=(",", ":")))

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()
    assert first.json()["created"] == 1
    assert _order_version(engine) == 1


def test_retry_other_key_order_is_replayed(client, erp, engine):
    first = _put(client, erp, json.dumps(ORDERS))

    second = _put(client, erp, json.dumps(ORDERS, sort_keys=True))

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert _order_version(engine) == 1


def test_retry_other_number_spelling_is_replayed(client, erp, engine):
    first = _put(client, erp, json.dumps(ORDERS))

    second = _put(client, erp, json.dumps(ORDERS).replace("240.0,", "240.00,"))

    assert '"amount": 240.0,' in json.dumps(ORDERS)
    assert second.status_code == 200, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json() == second.json()


def test_retry_other_value_is_422(client, erp, engine):
    _put(client, erp, json.dumps(ORDERS))
    changed = json.loads(json.dumps(ORDERS))
    changed["orders"][0]["open_amount"] = "200.00"

    response = _put(client, erp, json.dumps(changed, separators=(",", ":")))

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    with Session(engine) as session:
        order = session.get(SalesOrder, "SO-1")
    assert str(order.open_amount) == "240.00"


def test_retry_other_upload_is_422(client, keys):
    headers = {**keys["erp"], "Idempotency-Key": "upload-1"}

    def upload(amount: str):
        text = CSV_HEADER + f"U1,2025-06-10,{amount},CNY,某某,1,货款,\n"
        files = {"file": ("statement.csv", text.encode(), "text/csv")}
        return client.post(
            "/v1/statements", headers=headers, files=files, data={"match": "false"}
        )

    first = upload("88.00")
    second = upload("89.00")

    assert first.status_code == 201, first.text
    assert second.status_code == 422
    assert second.json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ('{"b": 1, "a": [1, 2]}', '{"a":[1,2],"b":1}'),
        ('{"a": 240}', '{"a": 240.00}'),
        ('{"a": 1e2}', '{"a": 100}'),
        ('{"a": -0.0}', '{"a": 0}'),
        ('{"名": "恒达"}', '{"\\u540d": "\\u6052\\u8fbe"}'),
    ],
)
def test_canonical_json_same_value(left, right):
    assert canonical_json(left.encode()) == canonical_json(right.encode())


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ('{"a": 1}', '{"a": "1"}'),
        ('{"a": [1, 2]}', '{"a": [2, 1]}'),
        ('{"a": 12345678901234567.01}', '{"a": 12345678901234567.02}'),
        (
            '{"a": 1234567890123456789012345678901}',
            '{"a": 1234567890123456789012345678902}',
        ),
        ('{"a": null}', "{}"),
    ],
)
def test_canonical_json_other_value(left, right):
    assert canonical_json(left.encode()) != canonical_json(right.encode())


def test_canonical_json_large_exponent_stays_short():
    canonical = canonical_json(b'{"a": 1e999999999}')

    assert canonical == b'{"a":1E+999999999}'


def test_canonical_json_keeps_invalid_body():
    assert canonical_json(b"not json {") == b"not json {"
