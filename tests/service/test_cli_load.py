"""`cashmatch load` with several folders and files."""

from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.db import make_engine
from models.tables import Customer, SalesOrder
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
