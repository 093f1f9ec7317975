"""`cashmatch demo` takes a generated company through the whole path."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from models.tables import Allocation, ImportBatch, StatementLine
from service.cli import app

MONEY = r"([\d,]+\.\d{2})"


def _amount(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def test_demo_prints_quality_and_where_money_went(
    monkeypatch, tmp_path, database_url, mlflow_uri, cold_start_dir, engine
):
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("CASHMATCH_MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("CASHMATCH_MLFLOW_REGISTRY_NAME", f"demo-{uuid.uuid4().hex[:8]}")

    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--folder",
            str(tmp_path / "demo"),
            "--customers",
            "20",
            "--lines",
            "60",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Cashmatch: " in result.output
    assert "baseline: " in result.output
    found = re.search(
        rf"money in: (\d+) lines, {MONEY}; booked to orders {MONEY}, to prepayment "
        rf"balances {MONEY}; waiting for a clerk (\d+) lines, {MONEY}; unmatched "
        rf"(\d+) lines, {MONEY}",
        result.output,
    )
    assert found, result.output
    with Session(engine) as session:
        lines = session.exec(
            select(StatementLine)
            .join(ImportBatch, ImportBatch.id == StatementLine.batch_id)
            .where(
                ImportBatch.file_name == "statement.csv",
                StatementLine.amount > 0,
                StatementLine.decision != "history",
            )
        ).all()
        to_orders = session.exec(
            select(func.sum(Allocation.amount)).where(
                Allocation.line_id.in_([line.id for line in lines]),
                Allocation.status == "confirmed",
                Allocation.target == "order",
            )
        ).one()
    review = [line.amount for line in lines if line.status == "review"]
    assert int(found.group(1)) == len(lines)
    assert _amount(found.group(2)) == sum(line.amount for line in lines)
    assert _amount(found.group(3)) == to_orders
    assert (int(found.group(5)), _amount(found.group(6))) == (len(review), sum(review))
