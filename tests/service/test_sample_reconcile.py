"""Reconcile real statements from the public sample statements.

Each test writes customers and orders for the lines of one real file, copies
the file into a temporary case folder and checks the allocations line by line.
"""

import csv
import shutil
from pathlib import Path

import pytest

from service.reconcile import reconcile
from service.settings import Settings

pytestmark = pytest.mark.samples


def _case(folder: Path, sample: Path, customers: str, orders: str, invoices: str = ""):
    folder.mkdir()
    shutil.copy(sample, folder / f"statement{sample.suffix}")
    (folder / "customers.csv").write_text(
        "customer_id,name,aliases,bank_accounts\n" + customers, encoding="utf-8"
    )
    (folder / "orders.csv").write_text(
        "order_id,customer_id,order_date,amount,open_amount,currency,"
        "deposit_amount,status\n" + orders,
        encoding="utf-8",
    )
    if invoices:
        (folder / "invoices.csv").write_text(
            "invoice_id,order_ids,amount,issue_date\n" + invoices, encoding="utf-8"
        )
    return folder


def _rows(folder: Path, tmp_path: Path) -> dict[str, list[tuple]]:
    out = tmp_path / "allocations.csv"
    reconcile(folder, out=out, settings=Settings(data_dir=tmp_path / "data"))
    found: dict[str, list[tuple]] = {}
    with out.open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            found.setdefault(row["line_ref"], []).append(
                (row["customer_id"], row["order_id"], row["target"], row["amount"])
            )
    return found


def test_mt940_invoice_in_memo(samples_dir, tmp_path):
    folder = _case(
        tmp_path / "case",
        samples_dir / "mt940" / "de-pl-cmxl-three-statements.sta",
        customers="PL01,Huta Szkla Topic,HUTA SZKLA TOPIC,\n",
        orders="ZS-2003-0117,PL01,2003-10-01,20000.00,20000.00,PLN,,open\n",
        invoices="333/2003,ZS-2003-0117,20000.00,2003-10-02\n",
    )

    rows = _rows(folder, tmp_path)

    assert rows["8327000090031789"] == [("PL01", "ZS-2003-0117", "order", "20000.00")]
    assert rows["8327000090031791"] == [("", "", "none", "40.00")]
    assert rows["55555#2"] == [("", "", "none", "3000.00")]
    assert len(rows) == 16


def test_camt_structured_references(samples_dir, tmp_path):
    folder = _case(
        tmp_path / "case",
        samples_dir / "camt" / "oca-camt053v04-ch-batch-txdtls-qrref.xml",
        customers="CH01,Boulangerie du Lac SA,,\nCH02,Atelier Rhône Sàrl,,\n",
        orders=(
            "CH-7001,CH01,2017-03-01,2187.00,2187.00,CHF,,open\n"
            "CH-7002,CH02,2017-03-02,1296.00,1296.00,CHF,,open\n"
            "CH-7003,CH02,2017-03-03,1296.00,1296.00,CHF,,open\n"
        ),
        invoices=(
            "302388292000011111111111111,CH-7001,2187.00,2017-03-01\n"
            "302388292000022222222222222,CH-7003,1296.00,2017-03-03\n"
        ),
    )

    rows = _rows(folder, tmp_path)

    assert rows["123456CHCAFEBABE"] == [("CH01", "CH-7001", "order", "2187.00")]
    assert rows["123456CHCAFEBABE#2"] == [("CH02", "CH-7003", "order", "1296.00")]


def test_alipay_gbk_bill(samples_dir, tmp_path):
    folder = _case(
        tmp_path / "case",
        samples_dir / "china" / "alipay-personal-2023-gbk.csv",
        customers="A01,杭州云帆网络科技有限公司,云帆网络,xxx***@163.com\n",
        orders="XS2301-0008,A01,2023-01-05,222228.50,222228.50,CNY,,open\n",
    )

    rows = _rows(folder, tmp_path)

    assert rows["2xxxxxxxxxxxxxxxxxxxxxxxxx9"] == [
        ("A01", "XS2301-0008", "order", "222228.50")
    ]
    money_out = [ref for ref, found in rows.items() if found[0][3].startswith("-")]
    assert money_out
    for ref in money_out:
        assert rows[ref][0][:3] == ("", "", "none")
