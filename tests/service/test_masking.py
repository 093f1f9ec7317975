"""Masking of payers' names and accounts, and which roles see it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from ingest.records import CustomerRecord
from models.db import session_scope
from models.tables import StatementLine
from service import booking, master
from service.app import create_app
from service.booking import Part
from service.masking import (
    mask_account,
    mask_customer_fields,
    mask_line_fields,
    mask_name,
    mask_record,
    mask_report_row,
    needs_masking,
)
from service.settings import Settings

PERSON = "张伟"
COMPANY = "恒达机械有限公司"
ACCOUNT = "6222020012344567"
COMPANY_ACCOUNT = "6222020099990001"
# Late enough that the balance booked on 2025-06-10 counts as unused.
REPORT_DAY = "2025-12-31"
LINE = {
    "line_ref": "M1",
    "booking_date": "2025-06-10",
    "amount": "250.00",
    "memo": f"货款 张伟 卡号 {ACCOUNT}",
    "counterparty_name": PERSON,
    "counterparty_account": ACCOUNT,
}


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        pytest.param("6222020012344567", "6222****4567", id="card"),
        pytest.param("6222 0200 1234 4567", "6222****4567", id="grouped"),
        pytest.param("6222001", "****2001", id="short"),
        pytest.param("1234", "****", id="four"),
        pytest.param("", "", id="empty"),
    ],
)
def test_mask_account_keeps_ends(number, expected):
    assert mask_account(number) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("张伟", "张*", id="chinese-person"),
        pytest.param("欧阳娜娜", "欧***", id="four-characters"),
        pytest.param("恒达机械有限公司", "恒达机械有限公司", id="chinese-company"),
        pytest.param("John Smith", "J*** S****", id="latin-person"),
        pytest.param("Wrenfield Club", "Wrenfield Club", id="club"),
        pytest.param("ACME TRADING CO LTD", "ACME TRADING CO LTD", id="latin-company"),
        pytest.param("", "", id="empty"),
    ],
)
def test_mask_name_hides_persons_only(name, expected):
    assert mask_name(name) == expected


@pytest.mark.parametrize(
    ("role", "masked"),
    [
        pytest.param("analyst", True, id="analyst"),
        pytest.param("clerk", False, id="clerk"),
        pytest.param("erp", False, id="erp"),
        pytest.param("admin", False, id="admin"),
    ],
)
def test_needs_masking_by_role(role, masked):
    assert needs_masking(role) is masked


def test_mask_line_fields_masks_memo():
    masked = mask_line_fields(LINE)

    assert masked["counterparty_name"] == "张*"
    assert masked["counterparty_account"] == "6222****4567"
    assert masked["memo"] == "货款 张* 卡号 6222****4567"
    assert masked["line_ref"] == "M1"
    assert LINE["counterparty_name"] == PERSON


def test_mask_record_masks_nested_reasons():
    record = {
        "line": {**LINE},
        "candidates": [{"reasons": [f"payer account {ACCOUNT} seen before"]}],
    }

    masked = mask_record(record)

    assert masked["line"]["counterparty_account"] == "6222****4567"
    assert masked["candidates"][0]["reasons"] == [
        "payer account 6222****4567 seen before"
    ]


def test_mask_report_row_masks_customer_name():
    row = {"customer_id": "C7", "name": PERSON, "detail": f"{PERSON} {ACCOUNT}"}

    masked = mask_report_row(row)

    assert masked == {"customer_id": "C7", "name": "张*", "detail": "张* 6222****4567"}


def test_mask_customer_fields_masks_accounts():
    customer = {
        "customer_id": "C7",
        "name": PERSON,
        "aliases": ["小张", COMPANY],
        "bank_accounts": [ACCOUNT],
    }

    masked = mask_customer_fields(customer)

    assert masked == {
        "customer_id": "C7",
        "name": "张*",
        "aliases": ["小*", COMPANY],
        "bank_accounts": ["6222****4567"],
    }


@pytest.fixture
def client(database_url, engine, tmp_path, cold_start_dir, monkeypatch):
    monkeypatch.setenv("CASHMATCH_WEBHOOK_INTERVAL_SECONDS", "0")
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )
    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def stored_line(client, keys) -> dict:
    body = client.post("/v1/match", headers=keys["erp"], json={"lines": [LINE]})
    assert body.status_code == 200
    return body.json()["lines"][0]


def test_api_line_masked_for_analyst(client, keys, stored_line):
    path = f"/v1/lines/{stored_line['line_id']}"

    analyst = client.get(path, headers=keys["analyst"]).json()["line"]
    clerk = client.get(path, headers=keys["clerk"]).json()["line"]

    assert analyst["counterparty_name"] == "张*"
    assert analyst["counterparty_account"] == "6222****4567"
    assert ACCOUNT not in analyst["memo"]
    assert clerk["counterparty_name"] == PERSON
    assert clerk["counterparty_account"] == ACCOUNT


def test_api_line_search_masked_for_analyst(client, keys, stored_line):
    found = client.get("/v1/lines?line_ref=M1", headers=keys["analyst"]).json()

    assert found[0]["counterparty_name"] == "张*"
    assert found[0]["id"] == stored_line["line_id"]


def test_api_tasks_masked_for_analyst(client, keys, stored_line):
    page = client.get("/v1/review-tasks", headers=keys["analyst"]).json()
    task = client.get(
        f"/v1/review-tasks/{page['items'][0]['id']}", headers=keys["analyst"]
    ).json()

    assert page["items"][0]["line"]["counterparty_name"] == "张*"
    assert task["line"]["counterparty_account"] == "6222****4567"
    assert ACCOUNT not in str(task)


def test_api_explain_masked_for_analyst(client, keys, stored_line):
    path = f"/v1/lines/{stored_line['line_id']}/explain"

    found = client.get(path, headers=keys["analyst"])

    assert found.status_code == 200
    assert ACCOUNT not in found.text


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        pytest.param("analyst", False, id="analyst"),
        pytest.param("clerk", True, id="clerk"),
    ],
)
def test_export_review_tasks_masks_for_role(client, keys, stored_line, role, shown):
    response = client.get("/v1/exports/review-tasks.csv", headers=keys[role])

    assert response.status_code == 200
    assert (ACCOUNT in response.text) is shown
    assert (PERSON in response.text) is shown
    assert ("6222****4567" in response.text) is not shown


@pytest.fixture
def customers(engine) -> None:
    """C7, a person with 250.00 on the balance since 2025-06-10, and C8, a company."""
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [
                CustomerRecord("C7", PERSON, bank_accounts=(ACCOUNT,)),
                CustomerRecord("C8", COMPANY, bank_accounts=(COMPANY_ACCOUNT,)),
            ],
        )
        payers = (
            ("P7", "C7", PERSON, ACCOUNT),
            ("P8", "C8", COMPANY, COMPANY_ACCOUNT),
        )
        for ref, customer, name, account in payers:
            line = StatementLine(
                account="default",
                line_ref=ref,
                dedupe_key=f"key-{ref}",
                booking_date=date(2025, 6, 10),
                amount=Decimal("250.00"),
                counterparty_name=name,
                counterparty_account=account,
                memo=LINE["memo"],
            )
            session.add(line)
            session.flush()
            booking.confirm(
                session,
                line,
                [Part("balance", Decimal("250.00"), customer)],
                actor="clerk-1",
            )


def test_api_customer_masked_for_analyst(client, keys, customers):
    analyst = client.get("/v1/customers/C7", headers=keys["analyst"]).json()
    clerk = client.get("/v1/customers/C7", headers=keys["clerk"]).json()

    assert analyst["name"] == "张*"
    assert analyst["bank_accounts"] == ["6222****4567"]
    assert analyst["balance"] == "250.00"
    assert clerk["name"] == PERSON
    assert clerk["bank_accounts"] == [ACCOUNT]


def test_api_company_customer_readable_for_analyst(client, keys, customers):
    analyst = client.get("/v1/customers/C8", headers=keys["analyst"]).json()

    assert analyst["name"] == COMPANY
    assert analyst["bank_accounts"] == ["6222****0001"]


def test_api_customer_ledger_masked_for_analyst(client, keys, customers):
    path = f"/v1/ledger/customers/C7?as_of={REPORT_DAY}"

    analyst = client.get(path, headers=keys["analyst"])
    clerk = client.get(path, headers=keys["clerk"]).json()

    assert analyst.status_code == 200
    assert analyst.json()["name"] == "张*"
    assert analyst.json()["balance"] == "250.00"
    assert PERSON not in analyst.text
    assert ACCOUNT not in analyst.text
    assert clerk["name"] == PERSON


@pytest.mark.parametrize("report", ["balances", "reminders", "customer-anomalies"])
def test_api_report_names_masked_for_analyst(client, keys, customers, report):
    path = f"/v1/reports/{report}?as_of={REPORT_DAY}"

    analyst = client.get(path, headers=keys["analyst"])
    clerk = client.get(path, headers=keys["clerk"]).json()

    assert analyst.status_code == 200
    names = {row["customer_id"]: row["name"] for row in analyst.json()["rows"]}
    assert names == {"C7": "张*", "C8": COMPANY}
    assert PERSON not in analyst.text
    assert {row["name"] for row in clerk["rows"]} == {PERSON, COMPANY}


def test_api_report_file_masked_for_analyst(client, keys, customers):
    path = f"/v1/reports/balances.csv?as_of={REPORT_DAY}"

    analyst = client.get(path, headers=keys["analyst"])

    assert analyst.status_code == 200
    assert "C7,张*,250.00" in analyst.text
    assert PERSON not in analyst.text


def test_api_ledger_anomalies_masked_for_analyst(client, keys, customers):
    path = f"/v1/ledger/anomalies?as_of={REPORT_DAY}"

    analyst = client.get(path, headers=keys["analyst"])

    assert analyst.status_code == 200
    names = {item["customer_id"]: item["name"] for item in analyst.json()}
    assert names == {"C7": "张*", "C8": COMPANY}
    assert PERSON not in analyst.text
