"""The payer-account reasons tell master data and earlier payments apart."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from models.db import session_scope
from review_ui.reasons import chinese_reason
from service.app import create_app
from service.auth import create_api_key
from service.settings import Settings

from .conftest import line

C1_NAME = "苏州恒达机械设备有限公司"
C1_ACCOUNT = "32050188000012345678"
REPRESENTATIVE_ACCOUNT = "6222021234567890123"
MASTER = "payer account in the customer master"


def _account_reasons(result) -> list[str]:
    return [reason for reason in result.reasons if reason.startswith("payer account")]


def test_master_account_without_payments(company):
    result = company().match(line("3280.00", name=C1_NAME, account=C1_ACCOUNT))

    assert _account_reasons(result) == [MASTER]


def test_master_account_with_one_payment(company):
    found = company()
    found.index.learn_payer(customer_id="C1", name=C1_NAME, account=C1_ACCOUNT)

    result = found.match(line("3280.00", name=C1_NAME, account=C1_ACCOUNT))

    assert _account_reasons(result) == [
        MASTER,
        "payer account seen in 1 earlier payment",
    ]


def test_learned_account_with_payments(company):
    found = company()
    for _ in range(2):
        found.index.learn_payer(
            customer_id="C3", name="王建国", account=REPRESENTATIVE_ACCOUNT
        )

    result = found.match(line("2350.00", name="王建国", account=REPRESENTATIVE_ACCOUNT))

    assert _account_reasons(result) == ["payer account seen in 2 earlier payments"]


def test_line_without_account_has_no_account_reason(company):
    result = company().match(line("3280.00", name=C1_NAME, memo="SO-4188"))

    assert _account_reasons(result) == []


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        (MASTER, "付款账号在客户主数据中"),
        ("payer account seen in 1 earlier payment", "付款账号在此前 1 笔付款中出现"),
        ("payer account seen in 3 earlier payments", "付款账号在此前 3 笔付款中出现"),
    ],
)
def test_account_reasons_in_chinese(english, chinese):
    assert chinese_reason(english) == chinese


def test_api_new_customer_account_is_master(
    database_url, engine, tmp_path, shared_cold_start
):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=shared_cold_start
    )
    with session_scope(engine) as session:
        key = create_api_key(session, "erp-1", role="erp", actor="test")
    headers = {"X-API-Key": key}
    customer = {"customer_id": "C1", "name": "恒达机械有限公司"}
    customer["bank_accounts"] = ["6222 001"]
    statement_line = {
        "line_ref": "L1",
        "booking_date": "2025-06-10",
        "amount": "730.00",
        "memo": "货款",
        "counterparty_name": "恒达机械有限公司",
        "counterparty_account": "6222001",
    }

    app = create_app(settings, engine=engine, review_page=False)
    with TestClient(app) as client:
        put = client.put(
            "/v1/customers", headers=headers, json={"customers": [customer]}
        )
        response = client.post(
            "/v1/match", headers=headers, json={"lines": [statement_line]}
        )

    assert put.status_code == 200, put.text
    assert response.status_code == 200, response.text
    reasons = response.json()["lines"][0]["reasons"]
    assert MASTER in reasons
    assert not [reason for reason in reasons if "earlier payment" in reason]
