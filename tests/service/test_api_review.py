"""The review queue over the API: list, claim and decide tasks."""

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.tables import Label, SalesOrder
from service.app import create_app
from service.settings import Settings


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def tasks(client, keys) -> list[dict]:
    """Lines from unknown payers, which wait for a clerk."""
    erp = keys["erp"]
    client.put(
        "/v1/customers",
        headers=erp,
        json={
            "customers": [
                {
                    "customer_id": "C1",
                    "name": "恒达机械有限公司",
                    "bank_accounts": ["6222001"],
                },
            ]
        },
    )
    client.put(
        "/v1/orders",
        headers=erp,
        json={
            "orders": [
                {
                    "order_id": "SO-1",
                    "customer_id": "C1",
                    "order_date": "2025-06-01",
                    "amount": "300.00",
                    "open_amount": "300.00",
                },
                {
                    "order_id": "SO-2",
                    "customer_id": "C1",
                    "order_date": "2025-06-02",
                    "amount": "200.00",
                    "open_amount": "200.00",
                },
            ]
        },
    )
    lines = [
        {
            "line_ref": ref,
            "booking_date": day,
            "amount": amount,
            "memo": "货款",
            "counterparty_name": "张三",
            "counterparty_account": "955880001",
            "account": account,
        }
        for ref, day, amount, account in (
            ("U1", "2025-06-10", "500.00", "bank-1"),
            ("U2", "2025-06-05", "77.00", "bank-2"),
        )
    ]
    client.post("/v1/match", headers=erp, json={"lines": lines})
    page = client.get("/v1/review-tasks", headers=erp).json()
    assert page["total"] == 2
    return page["items"]


def test_list_tasks_filters_and_counts(client, keys, tasks):
    page = client.get(
        "/v1/review-tasks", headers=keys["clerk-a"], params={"account": "bank-2"}
    ).json()

    assert page["total"] == 1
    assert page["items"][0]["line"]["line_ref"] == "U2"
    assert page["counts"]["account"] == {"bank-2": 1}


def test_list_tasks_sorted_by_amount(client, keys, tasks):
    page = client.get(
        "/v1/review-tasks", headers=keys["clerk-a"], params={"sort": "amount"}
    ).json()

    assert [item["line"]["amount"] for item in page["items"]] == ["500.00", "77.00"]


def test_claim_by_second_clerk_is_409(client, keys, tasks):
    task_id = tasks[0]["id"]
    first = client.post(f"/v1/review-tasks/{task_id}/claim", headers=keys["clerk-a"])

    second = client.post(f"/v1/review-tasks/{task_id}/claim", headers=keys["clerk-b"])

    assert first.status_code == 200
    assert first.json()["claimed_by"] == "clerk-a"
    assert second.status_code == 409
    assert second.json()["code"] == "review_conflict"


def test_claim_next_until_empty(client, keys, tasks):
    claimed = [
        client.post("/v1/review-tasks/claim-next", headers=keys["clerk-a"])
        for _ in range(3)
    ]

    assert [r.status_code for r in claimed] == [200, 200, 404]
    assert claimed[2].json()["code"] == "queue_empty"


def test_decision_split_books_and_labels(client, keys, engine, tasks):
    task = next(t for t in tasks if t["line"]["line_ref"] == "U1")
    body = {
        "action": "split",
        "version": task["line"]["version"],
        "allocations": [
            {
                "target": "order",
                "amount": "300.00",
                "customer_id": "C1",
                "order_id": "SO-1",
            },
            {
                "target": "order",
                "amount": "200.00",
                "customer_id": "C1",
                "order_id": "SO-2",
            },
        ],
    }

    response = client.post(
        f"/v1/review-tasks/{task['id']}/decision", headers=keys["clerk-a"], json=body
    )

    assert response.status_code == 200
    assert response.json()["line"]["status"] == "allocated"
    assert response.json()["label_id"] is not None
    with Session(engine) as session:
        assert session.get(SalesOrder, "SO-1").open_amount == Decimal("0.00")
        assert session.get(SalesOrder, "SO-2").open_amount == Decimal("0.00")
        label = session.exec(select(Label)).one()
    assert label.actor == "clerk-a"
    assert label.candidates == task["candidates"]


def test_decision_on_decided_task_is_409(client, keys, tasks):
    task = tasks[0]
    body = {"action": "not_customer", "note": "own transfer"}
    client.post(
        f"/v1/review-tasks/{task['id']}/decision", headers=keys["clerk-a"], json=body
    )

    again = client.post(
        f"/v1/review-tasks/{task['id']}/decision", headers=keys["clerk-b"], json=body
    )

    assert again.status_code == 409


def test_decision_bad_action_is_422(client, keys, tasks):
    response = client.post(
        f"/v1/review-tasks/{tasks[0]['id']}/decision",
        headers=keys["clerk-a"],
        json={"action": "delete"},
    )

    assert response.status_code == 422
