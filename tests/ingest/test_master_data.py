"""Master-data loaders: customers, orders, invoices and allocations."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import read_allocations, read_customers, read_invoices, read_orders
from models.errors import ImportFormatError


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_customers_split_lists(tmp_path):
    path = _write(tmp_path, "customers.csv",
                  "customer_id,name,aliases,bank_accounts\n"
                  "C1,上海远景贸易有限公司,远景贸易|Yuanjing Trading,6222 0200|6217 0001\n")

    [customer] = read_customers(path)

    assert customer.customer_id == "C1"
    assert customer.aliases == ("远景贸易", "Yuanjing Trading")
    assert customer.bank_accounts == ("6222 0200", "6217 0001")


def test_orders_read_status_any_case(tmp_path):
    path = _write(tmp_path, "orders.csv",
                  "order_id,customer_id,order_date,amount,open_amount,currency,"
                  "deposit_amount,status\n"
                  "SO-4101,C1,2025-06-01,200.00,200.00,CNY,,Open\n"
                  "SO-4102,C1,2025-06-03,150.00,50.00,CNY,30.00,PARTLY_PAID\n")

    first, second = read_orders(path)

    assert first.status == "open"
    assert first.deposit_amount is None
    assert first.order_date == date(2025, 6, 1)
    assert second.status == "partly_paid"
    assert second.open_amount == Decimal("50.00")
    assert second.deposit_amount == Decimal("30.00")


def test_orders_collect_every_bad_row(tmp_path):
    path = _write(tmp_path, "orders.csv",
                  "order_id,customer_id,order_date,amount,open_amount,currency,"
                  "deposit_amount,status\n"
                  "SO-1,C1,01.06.2025,200.00,200.00,CNY,,open\n"
                  "SO-2,C1,2025-06-01,2OO.00,200.00,CNY,,open\n"
                  "SO-3,C1,2025-06-01,200.00,250.00,CNY,,open\n"
                  "SO-3,C1,2025-06-01,200.00,200.00,CNY,,shipped\n")

    with pytest.raises(ImportFormatError) as info:
        read_orders(path)

    found = [(p.line, p.field) for p in info.value.problems]
    assert found == [(2, "order_date"), (3, "amount"), (4, "open_amount"),
                     (5, "order_id"), (5, "status")]
    assert all(p.file == "orders.csv" for p in info.value.problems)


def test_orders_missing_column_rejects_file(tmp_path):
    path = _write(tmp_path, "orders.csv", "order_id,customer_id,amount\nSO-1,C1,1.00\n")

    with pytest.raises(ImportFormatError, match="missing columns order_date, open_amount"):
        read_orders(path)


def test_invoices_split_orders(tmp_path):
    path = _write(tmp_path, "invoices.csv",
                  "invoice_id,order_ids,amount,issue_date\n"
                  "INV-9,SO-4101|SO-4102,350.00,2025-06-05\n")

    [invoice] = read_invoices(path)

    assert invoice.order_ids == ("SO-4101", "SO-4102")
    assert invoice.amount == Decimal("350.00")


def test_allocations_without_target_column(tmp_path):
    path = _write(tmp_path, "allocations.csv",
                  "line_ref,customer_id,order_id,amount\n"
                  "L-1,C1,SO-4101,200.00\n"
                  "L-1,C1,,50.00\n")

    first, second = read_allocations(path)

    assert first.target == "order"
    assert second.target == "balance"


def test_allocations_reject_unknown_target(tmp_path):
    path = _write(tmp_path, "allocations.csv",
                  "line_ref,customer_id,order_id,target,amount\n"
                  "L-1,C1,SO-4101,refund,200.00\n")

    with pytest.raises(ImportFormatError, match="unknown target"):
        read_allocations(path)
