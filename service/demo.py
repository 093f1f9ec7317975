"""`cashmatch demo`: a generated company taken through the whole path.

The demo writes a case folder, loads it into the configured database, trains
on its history (logged to MLflow and promoted), matches its statement and
compares the result with the generator's truth and with the baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from models.money import ZERO
from models.tables import Allocation, StatementLine
from service.cases import (
    case_data,
    load_master_folder,
    read_history,
    read_statement_file,
    store_history,
    store_statement_file,
)
from service.matching import match_lines
from service.results import line_rows
from service.settings import Settings
from service.train import train

log = logging.getLogger("cashmatch.service")


def run_demo(
    session: Session,
    settings: Settings,
    *,
    folder: Path,
    customers: int,
    lines: int,
    seed: int,
) -> str:
    """Generate, load, train, match and return a printable summary."""
    from training.synthetic import generate_case, write_case

    case = generate_case(
        seed=seed,
        customers=customers,
        open_orders=customers * 15,
        lines=lines,
        history_lines=lines * 2,
    )
    write_case(case, folder)
    log.info("demo company written to %s", folder)

    load_master_folder(session, folder)
    history = read_history(folder, settings)
    store_history(session, history, settings)
    trained = train(session, settings, case=folder)
    model = _serving(session, settings)

    _, stored = store_statement_file(
        session, read_statement_file(folder / "statement.csv"), settings, actor="demo"
    )
    fresh = [line for line in stored if line.status == "new"]
    match_lines(session, fresh, model, settings)
    session.flush()

    rows = line_rows(session, stored)
    summary = _summary(
        folder, case, rows, trained.summary(), case_data(folder, history)
    )
    return f"{summary}\n{_money_summary(session, stored)}"


def _serving(session: Session, settings: Settings):
    from service.serving import current_model

    return current_model(session, settings)


def _summary(folder: Path, case, rows: list[dict], trained: str, data) -> str:
    from matcher.baseline import baseline_match
    from training.metrics import evaluate

    data.statement_lines = case.data.statement_lines
    ours = evaluate(rows, case.truth, kinds=case.kinds, anomalies=case.anomalies)
    baseline = evaluate(baseline_match(data), case.truth, kinds=case.kinds)
    return "\n".join(
        [
            f"demo company in {folder}: {len(case.data.customers)} customers, "
            f"{len(case.data.orders)} orders, {len(case.data.statement_lines)} "
            "statement lines",
            trained,
            f"Cashmatch: {ours.headline()}",
            f"baseline:  {baseline.headline()}",
        ]
    )


def _money_summary(session: Session, lines: list[StatementLine]) -> str:
    """Return where the statement's incoming money went, in the account's currency."""
    incoming = [line for line in lines if line.amount > 0]
    booked = dict(
        session.exec(
            select(Allocation.target, func.sum(Allocation.amount))
            .where(
                Allocation.line_id.in_([line.id for line in incoming]),
                Allocation.status == "confirmed",
            )
            .group_by(Allocation.target)
        ).all()
    )
    waiting = {
        status: [line.amount for line in incoming if line.status == status]
        for status in ("review", "unmatched")
    }
    return (
        f"money in: {len(incoming)} lines, {_total(line.amount for line in incoming)}; "
        f"booked to orders {_total([booked.get('order', ZERO)])}, to prepayment "
        f"balances {_total([booked.get('balance', ZERO)])}; waiting for a clerk "
        f"{len(waiting['review'])} lines, {_total(waiting['review'])}; unmatched "
        f"{len(waiting['unmatched'])} lines, {_total(waiting['unmatched'])}"
    )


def _total(amounts) -> str:
    return f"{sum(amounts, ZERO):,.2f}"
