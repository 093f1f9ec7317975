import codecs
import csv
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.exports import ALLOCATION_COLUMNS
from service.reconcile import reconcile
from service.settings import Settings
from training.synthetic import generate_case, write_case

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def small_case(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("case")
    case = generate_case(
        seed=3, customers=25, open_orders=300, lines=120, history_lines=300
    )
    write_case(case, folder)
    return folder


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_reconcile_writes_every_line(small_case, tmp_path):
    out = tmp_path / "allocations.csv"

    report = reconcile(small_case, out=out, settings=Settings(data_dir=tmp_path))

    rows = _read(out)
    statement = _read(small_case / "statement.csv")
    assert list(rows[0].keys()) == list(ALLOCATION_COLUMNS)
    assert {row["line_ref"] for row in rows} == {row["line_ref"] for row in statement}
    assert report.model_source == "history"
    for row in rows:
        assert row["decision"] in ("auto", "review", "unmatched")
        assert row["target"] in ("order", "balance", "fee", "none")


def test_reconcile_unmatched_rows_have_no_customer(small_case, tmp_path):
    out = tmp_path / "allocations.csv"
    reconcile(small_case, out=out, settings=Settings(data_dir=tmp_path))

    unmatched = [row for row in _read(out) if row["decision"] == "unmatched"]

    assert unmatched
    for row in unmatched:
        assert row["customer_id"] == ""
        assert row["target"] == "none"


def test_reconcile_lines_never_over_allocated(small_case, tmp_path):
    out = tmp_path / "allocations.csv"
    reconcile(small_case, out=out, settings=Settings(data_dir=tmp_path))
    amounts = {
        row["line_ref"]: Decimal(row["amount"])
        for row in _read(small_case / "statement.csv")
    }

    booked: dict[str, Decimal] = {}
    for row in _read(out):
        if row["target"] in ("order", "balance", "none"):
            booked[row["line_ref"]] = booked.get(row["line_ref"], Decimal(0)) + Decimal(
                row["amount"]
            )

    assert booked == amounts


def test_reconcile_same_folder_same_output(small_case, tmp_path):
    first = tmp_path / "first.csv"
    second = tmp_path / "second.csv"

    reconcile(small_case, out=first, settings=Settings(data_dir=tmp_path))
    reconcile(small_case, out=second, settings=Settings(data_dir=tmp_path))

    assert first.read_text(encoding="utf-8") == second.read_text(encoding="utf-8")


def test_reconcile_mt940_example(tmp_path):
    out = tmp_path / "allocations.csv"

    reconcile(EXAMPLES / "mt940-march", out=out, settings=Settings(data_dir=tmp_path))

    rows = {(row["line_ref"], row["order_id"]): row for row in _read(out)}
    expected = {
        ("HB0303001", "SO-25031"): ("C001", "order", "12800.00"),
        ("HB0305002", "SO-25033"): ("C002", "order", "4500.00"),
        ("HB0307003", "SO-25040"): ("C004", "order", "6000.00"),
        ("HB0310004", ""): ("C003", "balance", "8000.00"),
        ("HB0312005", "SO-25036"): ("C001", "order", "15000.00"),
        ("HB0312005", "SO-25037"): ("C001", "order", "8600.00"),
        ("HB0321006", ""): ("", "none", "35.20"),
    }
    assert set(rows) == set(expected)
    for key, (customer, target, amount) in expected.items():
        assert (rows[key]["customer_id"], rows[key]["target"], rows[key]["amount"]) == (
            customer,
            target,
            amount,
        )
    assert rows[("HB0303001", "SO-25031")]["decision"] == "auto"
    assert rows[("HB0321006", "")]["decision"] == "unmatched"


def test_reconcile_cli_csv_starts_with_bom(tmp_path, monkeypatch):
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "allocations.csv"

    result = CliRunner().invoke(
        app, ["reconcile", str(EXAMPLES / "mt940-march"), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(codecs.BOM_UTF8 + b"line_ref,customer_id,order_id")
    assert data.count(b"\n") == data.count(b"\r\n") == 8
