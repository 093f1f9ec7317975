"""`cashmatch load` with several folders and files."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.db import make_engine, session_scope
from models.tables import Customer, SalesOrder, StatementLine
from service import booking
from service.booking import Part
from service.cli import app

CUSTOMERS_HEADER = "customer_id,name,aliases,bank_accounts\n"
ORDERS_HEADER = (
    "order_id,customer_id,order_date,amount,open_amount,currency,"
    "deposit_amount,status\n"
)


@pytest.fixture
def cli_database(database_url, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    return database_url


def _folder(root: Path, name: str, customers: str, orders: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "customers.csv").write_text(
        CUSTOMERS_HEADER + customers, encoding="utf-8"
    )
    (folder / "orders.csv").write_text(ORDERS_HEADER + orders, encoding="utf-8")
    return folder


def _stored(database_url: str) -> tuple[dict[str, str], dict[str, str]]:
    engine = make_engine(database_url)
    with Session(engine) as session:
        customers = dict(
            session.exec(select(Customer.customer_id, Customer.name)).all()
        )
        orders = dict(
            session.exec(select(SalesOrder.order_id, SalesOrder.customer_id)).all()
        )
    engine.dispose()
    return customers, orders


def test_load_two_folders_loads_both(cli_database, tmp_path):
    north = _folder(
        tmp_path,
        "north",
        "C1,North Tools,,\n",
        "SO-1,C1,2025-06-01,100.00,100.00,CNY,,open\n",
    )
    # South's order names North's customer, so every customers file must be
    # loaded before any orders file.
    south = _folder(
        tmp_path,
        "south",
        "C2,South Steel,,\nC3,South Glass,,\n",
        "SO-2,C2,2025-06-02,200.00,200.00,CNY,,open\n"
        "SO-3,C1,2025-06-03,300.00,300.00,CNY,,open\n",
    )

    result = CliRunner().invoke(app, ["load", str(south), str(north)])

    assert result.exit_code == 0, result.output
    assert (
        f"customers: 2 created, 0 updated ({south / 'customers.csv'})" in result.output
    )
    assert (
        f"customers: 1 created, 0 updated ({north / 'customers.csv'})" in result.output
    )
    assert f"orders: 2 created, 0 updated ({south / 'orders.csv'})" in result.output
    assert f"orders: 1 created, 0 updated ({north / 'orders.csv'})" in result.output
    customers, orders = _stored(cli_database)
    assert customers == {"C1": "North Tools", "C2": "South Steel", "C3": "South Glass"}
    assert orders == {"SO-1": "C1", "SO-2": "C2", "SO-3": "C1"}


def test_load_later_file_updates_same_row(cli_database, tmp_path):
    old = _folder(tmp_path, "old", "C1,Old Name,,\n", "")
    new = _folder(tmp_path, "new", "C1,New Name,,\n", "")

    result = CliRunner().invoke(app, ["load", str(old), str(new)])

    assert result.exit_code == 0, result.output
    assert "customers: 1 created, 0 updated" in result.output
    assert "customers: 0 created, 1 updated" in result.output
    customers, _ = _stored(cli_database)
    assert customers == {"C1": "New Name"}


def test_load_same_file_twice_loads_once(cli_database, tmp_path):
    folder = _folder(tmp_path, "only", "C1,Only Customer,,\n", "")

    result = CliRunner().invoke(
        app, ["load", str(folder), str(folder / "customers.csv")]
    )

    assert result.exit_code == 0, result.output
    loaded = [
        line for line in result.output.splitlines() if line.startswith("customers:")
    ]
    assert loaded == [f"customers: 1 created, 0 updated ({folder / 'customers.csv'})"]


def test_load_rejects_unknown_file_name(cli_database, tmp_path):
    stray = tmp_path / "clients.csv"
    stray.write_text(CUSTOMERS_HEADER + "C1,Stray,,\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["load", str(stray)])

    assert result.exit_code == 1
    assert f"file {stray} is not customers.csv, orders.csv or invoices.csv" in (
        result.output
    )
    customers, _ = _stored(cli_database)
    assert customers == {}


def _pay_order(database_url: str, order_id: str, amount: str) -> None:
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref="L1",
            dedupe_key="k-L1",
            booking_date=date(2025, 6, 10),
            amount=Decimal(amount),
            memo=order_id,
        )
        session.add(line)
        session.flush()
        part = Part("order", Decimal(amount), "C1", order_id)
        booking.confirm(session, line, [part], actor="clerk-a")
    engine.dispose()


def test_load_rejects_amount_below_paid(cli_database, tmp_path):
    first = _folder(
        tmp_path,
        "first",
        "C1,North Tools,,\n",
        "SO-9501,C1,2024-12-01,730.00,730.00,CNY,,open\n",
    )
    assert CliRunner().invoke(app, ["load", str(first)]).exit_code == 0
    _pay_order(cli_database, "SO-9501", "727.00")
    lowered = tmp_path / "orders.csv"
    lowered.write_text(
        ORDERS_HEADER + "SO-9501,C1,2024-12-01,700.00,0.00,CNY,,open\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(app, ["load", str(lowered)])

    assert result.exit_code == 1
    assert (
        "orders.csv: order SO-9501: its amount 700.00 is less than the 727.00 "
        "confirmed on it in Cashmatch. Nothing was changed." in result.output
    )
    engine = make_engine(cli_database)
    with Session(engine) as session:
        order = session.get(SalesOrder, "SO-9501")
    engine.dispose()
    assert order.amount == Decimal("730.00")
    assert order.open_amount == Decimal("3.00")
