"""The ledger API: balances, applications, approvals, months and reports."""

import csv
import io
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from models.db import session_scope
from models.tables import LedgerEntry
from service.app import create_app
from service.auth import create_api_key
from service.settings import Settings

CSV_HEADER = (
    "line_ref,booking_date,amount,currency,counterparty_name,"
    "counterparty_account,memo,bank_reference\n"
)


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir, monkeypatch):
    monkeypatch.setenv("CASHMATCH_APPROVAL_LIMIT", "1000.00")
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def clerk_b(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        key = create_api_key(session, "clerk-b", role="clerk", actor="test")
    return {"X-API-Key": key}


def _seed(client, headers, *, balance="500.00"):
    """Customer C1 with orders SO-1 (300.00), SO-2 (200.00) and a balance."""
    customers = [{"customer_id": "C1", "name": "恒达机械有限公司"}]
    assert client.put(
        "/v1/customers", headers=headers, json={"customers": customers}
    ).is_success
    orders = [
        {
            "order_id": order_id,
            "customer_id": "C1",
            "order_date": "2025-06-01",
            "amount": amount,
            "open_amount": amount,
        }
        for order_id, amount in (("SO-1", "300.00"), ("SO-2", "200.00"))
    ]
    assert client.put("/v1/orders", headers=headers, json={"orders": orders}).is_success
    text = CSV_HEADER + f"L1,2025-06-10,{balance},CNY,恒达,,advance,\n"
    files = {"file": ("statement.csv", text.encode(), "text/csv")}
    uploaded = client.post(
        "/v1/statements", headers=headers, files=files, data={"match": "false"}
    )
    assert uploaded.status_code == 201, uploaded.text
    line = client.get("/v1/lines", headers=headers, params={"line_ref": "L1"}).json()
    body = {
        "version": line[0]["version"],
        "allocations": [{"target": "balance", "amount": balance, "customer_id": "C1"}],
    }
    confirmed = client.post(
        f"/v1/lines/{line[0]['id']}/confirm", headers=headers, json=body
    )
    assert confirmed.status_code == 200, confirmed.text


def _apply(client, headers, amount, order_id="SO-1", **extra):
    return client.post(
        "/v1/ledger/customers/C1/applications",
        headers={**headers, **extra.pop("extra_headers", {})},
        json={"amount": amount, "order_id": order_id, **extra},
    )


def test_ledger_api_apply_to_order(client, keys):
    _seed(client, keys["admin"])

    response = _apply(client, keys["clerk"], "120.00")

    assert response.status_code == 201, response.text
    [entry] = response.json()["entries"]
    assert (entry["kind"], entry["amount"], entry["order_id"]) == (
        "application",
        "-120.00",
        "SO-1",
    )
    view = client.get("/v1/ledger/customers/C1", headers=keys["clerk"]).json()
    assert view["balance"] == "380.00"
    order = client.get("/v1/orders/SO-1", headers=keys["clerk"]).json()
    assert order["open_amount"] == "180.00"


def test_ledger_api_apply_beyond_balance_is_409(client, keys):
    _seed(client, keys["admin"], balance="100.00")

    response = _apply(client, keys["clerk"], "150.00")

    assert response.status_code == 409
    assert response.json()["code"] == "balance_conflict"
    audit = client.get(
        "/v1/audit", headers=keys["admin"], params={"action": "apply_rejected"}
    ).json()
    assert len(audit) == 1
    assert audit[0]["actor"] == "clerk-1"


def test_ledger_api_apply_replayed_once(client, keys):
    _seed(client, keys["admin"])
    key = {"Idempotency-Key": "apply-1"}

    first = _apply(client, keys["clerk"], "100.00", extra_headers=key)
    second = _apply(client, keys["clerk"], "100.00", extra_headers=key)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    view = client.get("/v1/ledger/customers/C1", headers=keys["clerk"]).json()
    assert view["balance"] == "400.00"


def test_ledger_api_concurrent_applications(client, keys):
    _seed(client, keys["admin"], balance="100.00")
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def apply(order_id: str) -> None:
        barrier.wait()
        statuses.append(_apply(client, keys["clerk"], "70.00", order_id).status_code)

    threads = [threading.Thread(target=apply, args=(o,)) for o in ("SO-1", "SO-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201, 409]
    view = client.get("/v1/ledger/customers/C1", headers=keys["clerk"]).json()
    assert view["balance"] == "30.00"


def test_ledger_api_write_off_needs_other_user(client, keys, clerk_b):
    _seed(client, keys["admin"], balance="5000.00")

    asked = client.post(
        "/v1/ledger/customers/C1/write-offs",
        headers=keys["clerk"],
        json={"amount": "1500.00", "note": "customer closed"},
    )
    request_id = asked.json()["id"]
    own = client.post(
        f"/v1/ledger/requests/{request_id}/approve", headers=keys["clerk"], json={}
    )
    pending = client.get(
        "/v1/ledger/requests", headers=keys["clerk"], params={"status": "pending"}
    ).json()
    approved = client.post(
        f"/v1/ledger/requests/{request_id}/approve",
        headers=clerk_b,
        json={"reason": "checked with sales"},
    )

    assert asked.status_code == 201
    assert asked.json()["status"] == "pending"
    assert own.status_code == 403
    assert own.json()["code"] == "own_request"
    assert [r["id"] for r in pending] == [request_id]
    assert approved.status_code == 200, approved.text
    assert approved.json()["decided_by"] == "clerk-b"
    view = client.get("/v1/ledger/customers/C1", headers=keys["clerk"]).json()
    assert view["balance"] == "3500.00"


def test_ledger_api_erp_cannot_approve(client, keys):
    _seed(client, keys["admin"], balance="5000.00")
    asked = client.post(
        "/v1/ledger/customers/C1/refunds",
        headers=keys["clerk"],
        json={"amount": "2000.00"},
    )

    response = client.post(
        f"/v1/ledger/requests/{asked.json()['id']}/approve",
        headers=keys["erp"],
        json={},
    )

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_ledger_api_close_month_admin_only(client, keys):
    clerk = client.post(
        "/v1/ledger/months/2025-06/close", headers=keys["clerk"], json={}
    )
    admin = client.post(
        "/v1/ledger/months/2025-06/close", headers=keys["admin"], json={"note": "done"}
    )
    again = client.post(
        "/v1/ledger/months/2025-06/close", headers=keys["admin"], json={}
    )
    months = client.get("/v1/ledger/months", headers=keys["clerk"]).json()

    assert clerk.status_code == 403
    assert admin.status_code == 201
    assert again.status_code == 409
    assert again.json()["code"] == "month_closed"
    assert [m["month"] for m in months] == ["2025-06"]


def test_ledger_api_booking_in_closed_month_is_409(client, keys):
    _seed(client, keys["admin"])
    client.post("/v1/ledger/months/2025-06/close", headers=keys["admin"], json={})

    response = _apply(client, keys["clerk"], "100.00", booked_on="2025-06-30")

    assert response.status_code == 409
    assert response.json()["code"] == "month_closed"


def test_ledger_api_reverse_entry(client, keys):
    _seed(client, keys["admin"])
    [entry] = _apply(client, keys["clerk"], "100.00").json()["entries"]

    response = client.post(
        f"/v1/ledger/entries/{entry['id']}/reverse",
        headers=keys["clerk"],
        json={"reason": "wrong order"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["reverses_id"] == entry["id"]
    assert response.json()["amount"] == "100.00"


def test_ledger_api_entries_after_cursor(client, keys):
    client.app.state.feed_settle_seconds = 0
    _seed(client, keys["admin"])
    _apply(client, keys["clerk"], "100.00")

    page = client.get("/v1/ledger/entries", headers=keys["erp"]).json()
    after = client.get(
        "/v1/ledger/entries",
        headers=keys["erp"],
        params={"cursor": page["next_cursor"]},
    ).json()

    assert [e["kind"] for e in page["entries"]] == ["receipt", "application"]
    assert after == {"entries": [], "next_cursor": page["next_cursor"]}


def test_ledger_api_entries_held_back_until_settled(client, keys):
    client.app.state.feed_settle_seconds = 3600
    _seed(client, keys["admin"])

    page = client.get("/v1/ledger/entries", headers=keys["erp"]).json()

    assert page == {"entries": [], "next_cursor": 0}


def test_ledger_api_unknown_customer_is_404(client, keys):
    response = client.get("/v1/ledger/customers/NOPE", headers=keys["clerk"])

    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


def test_ledger_api_invoice_rejected_by_policy(client, keys):
    _seed(client, keys["admin"], balance="100.00")
    settings = client.app.state.settings
    client.app.state.settings = settings.model_copy(update={"invoice_policy": "reject"})
    invoice = {"invoice_id": "INV-1", "order_ids": ["SO-1"], "amount": "300.00"}

    response = client.put(
        "/v1/invoices", headers=keys["erp"], json={"invoices": [invoice]}
    )
    missing = client.get("/v1/invoices/INV-1/check", headers=keys["erp"])

    assert response.status_code == 409
    assert response.json()["code"] == "invoice_not_covered"
    assert "INV-1 short by 200.00" in response.json()["detail"]
    assert missing.status_code == 404


def test_ledger_api_invoice_check_counts_earlier(client, keys):
    _seed(client, keys["admin"], balance="300.00")
    invoices = [
        {
            "invoice_id": "INV-1",
            "order_ids": ["SO-1"],
            "amount": "300.00",
            "issue_date": "2025-06-11",
        },
        {
            "invoice_id": "INV-2",
            "order_ids": ["SO-2"],
            "amount": "200.00",
            "issue_date": "2025-06-12",
        },
    ]
    client.put("/v1/invoices", headers=keys["erp"], json={"invoices": invoices})

    check = client.get("/v1/ledger/invoices/INV-2/check", headers=keys["erp"]).json()

    assert check["prepayment_balance"] == "0.00"
    assert check["covered"] is False
    assert check["shortfall"] == "200.00"


def test_ledger_api_reminders_as_json_and_csv(client, keys):
    _seed(client, keys["admin"], balance="400.00")

    listed = client.get(
        "/v1/reports/reminders", headers=keys["clerk"], params={"as_of": "2025-12-31"}
    ).json()
    exported = client.get(
        "/v1/reports/reminders.csv",
        headers=keys["clerk"],
        params={"as_of": "2025-12-31"},
    )

    [row] = listed["rows"]
    assert (row["kind"], row["customer_id"], row["amount"]) == (
        "unused_balance",
        "C1",
        "400.00",
    )
    assert row["age_days"] == 204
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0]["amount"] == "400.00"
    assert rows[0]["since"] == "2025-06-10"


def test_ledger_api_balances_as_of_earlier_day(client, keys):
    _seed(client, keys["admin"], balance="812.00")

    before = client.get(
        "/v1/reports/balances", headers=keys["clerk"], params={"as_of": "2025-05-01"}
    )
    on_day = client.get(
        "/v1/reports/balances", headers=keys["clerk"], params={"as_of": "2025-06-10"}
    )

    assert before.status_code == 200, before.text
    assert before.json()["rows"] == []
    [row] = on_day.json()["rows"]
    assert (row["customer_id"], row["balance"]) == ("C1", "812.00")
    assert (row["oldest_day"], row["age_days"]) == ("2025-06-10", 0)


@pytest.mark.parametrize(
    "name", ["balances", "unmatched", "anomalies", "customer-anomalies", "reminders"]
)
def test_ledger_api_report_xlsx(client, keys, name):
    _seed(client, keys["admin"])

    response = client.get(f"/v1/reports/{name}.xlsx", headers=keys["clerk"])

    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet.title == name


def test_ledger_api_reconciliation(client, keys):
    _seed(client, keys["admin"])

    response = client.get(
        "/v1/reports/reconciliation",
        headers=keys["clerk"],
        params={"account": "default", "month": "2025-06"},
    )

    body = response.json()
    assert response.status_code == 200, response.text
    assert body["places"]["balance"] == "500.00"
    assert body["ledger_receipts"] == "500.00"
    assert [d["kind"] for d in body["differences"]] == ["no_statement_balance"]
    assert body["tied"] is False


def test_ledger_api_reconciliation_closing_date(client, keys):
    statement = (
        b":20:STMT-JUN\n:25:CN0012345678\n:28C:6/1\n:60F:C250531CNY0,00\n"
        b":61:2506280628C500,00NTRFNONREF//BREF-0628\n:86:ADVANCE\n"
        b":62F:C250630CNY500,00\n-\n"
    )
    files = {"file": ("june.sta", statement, "text/plain")}
    uploaded = client.post(
        "/v1/statements", headers=keys["admin"], files=files, data={"match": "false"}
    )
    assert uploaded.status_code == 201, uploaded.text

    response = client.get(
        "/v1/reports/reconciliation",
        headers=keys["clerk"],
        params={"account": "CN0012345678", "month": "2025-06"},
    )

    body = response.json()
    assert response.status_code == 200, response.text
    assert body["closing_balance"] == "500.00"
    assert body["closing_day"] == "2025-06-30"
    assert body["closing_day_source"] == "balance_date"
    assert body["differences"] == []


def test_ledger_api_unmatched_masked_for_analyst(client, keys):
    _seed(client, keys["admin"])
    text = CSV_HEADER + "L2,2025-06-11,88.00,CNY,张伟,6222020012344567,转账,\n"
    files = {"file": ("more.csv", text.encode(), "text/csv")}
    client.post("/v1/statements", headers=keys["admin"], files=files)

    clerk = client.get("/v1/reports/unmatched", headers=keys["clerk"]).json()
    analyst = client.get("/v1/reports/unmatched", headers=keys["analyst"]).json()

    [clerk_row] = [r for r in clerk["rows"] if r["line_ref"] == "L2"]
    [analyst_row] = [r for r in analyst["rows"] if r["line_ref"] == "L2"]
    assert clerk_row["counterparty_account"] == "6222020012344567"
    assert analyst_row["counterparty_account"] == "6222****4567"
    assert analyst_row["counterparty_name"] == "张*"


def _seed_dated_ledger(client, headers, engine) -> None:
    """C1: a receipt on 2025-06-10, an application on 2025-06-20, an old entry."""
    _seed(client, headers)
    applied = _apply(client, headers, "300.00", booked_on="2025-06-20")
    assert applied.status_code == 201, applied.text
    with session_scope(engine) as session:
        # Entries stored before `booked_on` existed count on their created_at day.
        session.add(
            LedgerEntry(
                customer_id="C1",
                kind="receipt",
                amount=Decimal("5.00"),
                created_at=datetime(2025, 3, 2, 9, 30, tzinfo=UTC),
            )
        )


def test_ledger_export_csv_has_booked_on(client, keys, engine):
    _seed_dated_ledger(client, keys["admin"], engine)

    response = client.get(
        "/v1/exports/ledger.csv", headers=keys["clerk"], params={"customer_id": "C1"}
    )

    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert list(rows[0])[:4] == ["entry_id", "customer_id", "booked_on", "created_at"]
    assert [(r["kind"], r["amount"], r["booked_on"]) for r in rows] == [
        ("receipt", "500.00", "2025-06-10"),
        ("application", "-300.00", "2025-06-20"),
        ("receipt", "5.00", "2025-03-02"),
    ]


def test_ledger_export_xlsx_has_booked_on(client, keys, engine):
    _seed_dated_ledger(client, keys["admin"], engine)

    response = client.get(
        "/v1/exports/ledger.xlsx", headers=keys["clerk"], params={"customer_id": "C1"}
    )

    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content)).active
    header = [cell.value for cell in sheet[1]]
    column = header.index("booked_on")
    days = [row[column].value for row in sheet.iter_rows(min_row=2)]
    assert days == ["2025-06-10", "2025-06-20", "2025-03-02"]
