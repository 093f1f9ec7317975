"""Confirming, changing and reversing lines over the API, with retries and races."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from models.tables import Allocation, AuditEvent, ReviewTask, SalesOrder, StatementLine
from service.app import create_app
from service.settings import Settings

CSV_HEADER = (
    "line_ref,booking_date,amount,currency,counterparty_name,"
    "counterparty_account,memo,bank_reference\n"
)


@pytest.fixture
def app(database_url, engine, tmp_path, cold_start_dir):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    return create_app(settings, engine=engine, review_page=False)


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


def _seed(client, headers, *orders):
    customers = [
        {"customer_id": "C1", "name": "恒达机械有限公司", "bank_accounts": ["6222001"]}
    ]
    client.put("/v1/customers", headers=headers, json={"customers": customers})
    rows = [
        {
            "order_id": order_id,
            "customer_id": "C1",
            "order_date": "2025-06-01",
            "amount": amount,
            "open_amount": amount,
        }
        for order_id, amount in orders
    ]
    response = client.put("/v1/orders", headers=headers, json={"orders": rows})
    assert response.status_code == 200


def _upload(client, headers, lines) -> list[int]:
    """Store lines without matching them and return their ids."""
    text = CSV_HEADER + "".join(
        f"{ref},2025-06-10,{amount},CNY,恒达机械有限公司,6222001,{memo},\n"
        for ref, amount, memo in lines
    )
    response = client.post(
        "/v1/statements",
        headers=headers,
        files={"file": ("statement.csv", text.encode(), "text/csv")},
        data={"match": "false"},
    )
    assert response.status_code == 201, response.text
    ids = []
    for ref, _, _ in lines:
        found = client.get("/v1/lines", headers=headers, params={"line_ref": ref})
        ids.append(found.json()[0]["id"])
    return ids


def _to_order(order_id, amount, version):
    return {
        "version": version,
        "allocations": [
            {
                "target": "order",
                "amount": amount,
                "customer_id": "C1",
                "order_id": order_id,
            }
        ],
    }


def _open_amount(engine, order_id) -> Decimal:
    with Session(engine) as session:
        return session.get(SalesOrder, order_id).open_amount


def _confirmed(engine) -> list[Allocation]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Allocation).where(Allocation.status == "confirmed")
            ).all()
        )


def test_confirm_race_and_resend(client, app, keys, engine):
    _seed(client, keys["erp"], ("SO-9501", "730.00"))
    [line_id] = _upload(client, keys["erp"], [("L-9501", "730.00", "SO-9501")])
    body = _to_order("SO-9501", "730.00", 1)
    responses = {}

    def confirm(name, key, delay):
        time.sleep(delay)
        with TestClient(app) as own:
            headers = {**keys[name], "Idempotency-Key": key}
            responses[name] = own.post(
                f"/v1/lines/{line_id}/confirm", headers=headers, json=body
            )

    threads = [
        threading.Thread(target=confirm, args=("clerk-a", "key-a", 0.0)),
        threading.Thread(target=confirm, args=("clerk-b", "key-b", 0.05)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in responses.values())
    assert statuses == [200, 409]
    winner = next(name for name, r in responses.items() if r.status_code == 200)
    loser = next(name for name, r in responses.items() if r.status_code == 409)
    assert responses[loser].json()["code"] == "allocation_conflict"

    key = "key-a" if winner == "clerk-a" else "key-b"
    resend = client.post(
        f"/v1/lines/{line_id}/confirm",
        headers={**keys[winner], "Idempotency-Key": key},
        json=body,
    )
    assert resend.status_code == 200
    assert resend.json() == responses[winner].json()
    assert resend.headers["Idempotent-Replayed"] == "true"

    assert len(_confirmed(engine)) == 1
    assert _open_amount(engine, "SO-9501") == Decimal("0.00")
    with Session(engine) as session:
        rejected = session.exec(
            select(AuditEvent).where(AuditEvent.action == "confirm_rejected")
        ).all()
    assert [event.actor for event in rejected] == [loser]


def test_confirm_second_order_is_over_allocation(client, keys, engine):
    _seed(client, keys["erp"], ("SO-9601", "730.00"), ("SO-9602", "730.00"))
    [line_id] = _upload(client, keys["erp"], [("L-9601", "730.00", "SO-9601")])
    first = client.post(
        f"/v1/lines/{line_id}/confirm",
        headers=keys["clerk-a"],
        json=_to_order("SO-9601", "730.00", 1),
    )
    version = first.json()["line"]["version"]

    second = client.post(
        f"/v1/lines/{line_id}/confirm",
        headers=keys["clerk-b"],
        json=_to_order("SO-9602", "730.00", version),
    )

    assert second.status_code == 409
    assert "over-allocate it by 730.00" in second.json()["detail"]
    assert _open_amount(engine, "SO-9601") == Decimal("0.00")
    assert _open_amount(engine, "SO-9602") == Decimal("730.00")
    assert len(_confirmed(engine)) == 1


def test_confirm_short_allocation_is_422(client, keys, engine):
    _seed(client, keys["erp"], ("SO-1", "500.00"))
    [line_id] = _upload(client, keys["erp"], [("L1", "400.00", "SO-1")])
    body = _to_order("SO-1", "350.00", 1)

    response = client.post(
        f"/v1/lines/{line_id}/confirm", headers=keys["clerk-a"], json=body
    )

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_allocation"
    assert "add up to 350.00" in response.json()["detail"]
    assert _open_amount(engine, "SO-1") == Decimal("500.00")


def test_confirm_without_suggestion_is_422(client, keys):
    _seed(client, keys["erp"], ("SO-1", "500.00"))
    [line_id] = _upload(client, keys["erp"], [("L1", "500.00", "SO-1")])

    response = client.post(
        f"/v1/lines/{line_id}/confirm", headers=keys["clerk-a"], json={"version": 1}
    )

    assert response.status_code == 422
    assert "no suggestion" in response.json()["detail"]


def test_change_moves_money_to_other_order(client, keys, engine):
    _seed(client, keys["erp"], ("SO-1", "300.00"), ("SO-2", "300.00"))
    [line_id] = _upload(client, keys["erp"], [("L1", "300.00", "SO-1")])
    first = client.post(
        f"/v1/lines/{line_id}/confirm",
        headers=keys["clerk-a"],
        json=_to_order("SO-1", "300.00", 1),
    ).json()

    body = {
        **_to_order("SO-2", "300.00", first["line"]["version"]),
        "reason": "wrong order",
    }
    response = client.post(
        f"/v1/lines/{line_id}/change", headers=keys["clerk-a"], json=body
    )

    assert response.status_code == 200
    assert [row["order_id"] for row in response.json()["allocations"]] == ["SO-2"]
    assert _open_amount(engine, "SO-1") == Decimal("300.00")
    assert _open_amount(engine, "SO-2") == Decimal("0.00")
    assert [a.order_id for a in _confirmed(engine)] == ["SO-2"]


def test_reverse_stale_version_is_409(client, keys, engine):
    _seed(client, keys["erp"], ("SO-1", "300.00"))
    [line_id] = _upload(client, keys["erp"], [("L1", "300.00", "SO-1")])
    client.post(
        f"/v1/lines/{line_id}/confirm",
        headers=keys["clerk-a"],
        json=_to_order("SO-1", "300.00", 1),
    )

    response = client.post(
        f"/v1/lines/{line_id}/reverse",
        headers=keys["clerk-a"],
        json={"version": 1, "reason": "paid twice"},
    )

    assert response.status_code == 409
    assert _open_amount(engine, "SO-1") == Decimal("0.00")


def test_reverse_reopens_order_and_task(client, keys, engine):
    _seed(client, keys["erp"], ("SO-1", "300.00"))
    [line_id] = _upload(client, keys["erp"], [("L1", "300.00", "SO-1")])
    confirmed = client.post(
        f"/v1/lines/{line_id}/confirm",
        headers=keys["clerk-a"],
        json=_to_order("SO-1", "300.00", 1),
    ).json()

    response = client.post(
        f"/v1/lines/{line_id}/reverse",
        headers=keys["clerk-a"],
        json={"version": confirmed["line"]["version"], "reason": "paid twice"},
    )

    assert response.status_code == 200
    assert response.json()["line"]["status"] == "review"
    assert _open_amount(engine, "SO-1") == Decimal("300.00")
    assert _confirmed(engine) == []
    with Session(engine) as session:
        task = session.exec(
            select(ReviewTask).where(ReviewTask.line_id == line_id)
        ).one()
    assert task.status == "open"


def test_idempotency_key_reused_for_other_body_is_422(client, keys):
    _seed(client, keys["erp"], ("SO-1", "300.00"), ("SO-2", "300.00"))
    [line_id] = _upload(client, keys["erp"], [("L1", "300.00", "SO-1")])
    headers = {**keys["clerk-a"], "Idempotency-Key": "same-key"}
    client.post(
        f"/v1/lines/{line_id}/confirm",
        headers=headers,
        json=_to_order("SO-1", "300.00", 1),
    )

    response = client.post(
        f"/v1/lines/{line_id}/confirm",
        headers=headers,
        json=_to_order("SO-2", "300.00", 1),
    )

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


def test_idempotency_retry_of_failure_runs_again(client, keys, engine):
    _seed(client, keys["erp"], ("SO-1", "300.00"))
    [line_id] = _upload(client, keys["erp"], [("L1", "300.00", "SO-1")])
    headers = {**keys["clerk-a"], "Idempotency-Key": "retry-key"}
    body = _to_order("SO-1", "300.00", 5)

    first = client.post(f"/v1/lines/{line_id}/confirm", headers=headers, json=body)
    second = client.post(f"/v1/lines/{line_id}/confirm", headers=headers, json=body)

    assert first.status_code == 409
    assert second.status_code == 409
    assert "Idempotent-Replayed" not in second.headers


def test_upload_resend_with_key_imports_once(client, keys, engine):
    text = CSV_HEADER + "U1,2025-06-10,88.00,CNY,某某,1,货款,\n"
    headers = {**keys["erp"], "Idempotency-Key": "upload-1"}
    files = {"file": ("statement.csv", text.encode(), "text/csv")}

    first = client.post(
        "/v1/statements", headers=headers, files=files, data={"match": "false"}
    )
    second = client.post(
        "/v1/statements", headers=headers, files=files, data={"match": "false"}
    )

    assert first.status_code == 201
    assert second.status_code == 201
    assert second.json() == first.json()
    assert first.json()["lines_new"] == 1
    with Session(engine) as session:
        assert len(session.exec(select(StatementLine)).all()) == 1


def test_concurrent_confirmations_keep_sums(client, app, keys, engine):
    _seed(client, keys["erp"], ("SO-1", "1000.00"))
    line_ids = _upload(
        client, keys["erp"], [(f"L{i}", "100.00", "SO-1") for i in range(20)]
    )
    # Every line is confirmed twice at once, by two clerks, to one order
    # that can take only ten of them.
    jobs = [(line_id, name) for line_id in line_ids for name in ("clerk-a", "clerk-b")]

    def confirm(job):
        line_id, name = job
        with TestClient(app) as own:
            response = own.post(
                f"/v1/lines/{line_id}/confirm",
                headers=keys[name],
                json=_to_order("SO-1", "100.00", 1),
            )
        return line_id, response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(confirm, jobs))

    assert {status for _, status in results} <= {200, 409}
    booked = [line_id for line_id, status in results if status == 200]
    assert len(booked) == 10
    assert len(set(booked)) == 10
    confirmed = _confirmed(engine)
    assert len(confirmed) == 10
    assert sum(a.amount for a in confirmed) == Decimal("1000.00")
    assert _open_amount(engine, "SO-1") == Decimal("0.00")
    with Session(engine) as session:
        order = session.get(SalesOrder, "SO-1")
        allocated = session.exec(
            select(StatementLine).where(StatementLine.status == "allocated")
        ).all()
    assert order.status == "paid"
    assert sorted(line.id for line in allocated) == sorted(booked)
