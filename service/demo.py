"""`cashmatch demo`: a generated company taken through the whole path.

The demo writes a case folder, loads it into the configured database, trains
on its history (logged to MLflow and promoted), matches its statement and
compares the result with the generator's truth and with the baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlmodel import Session

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
    return _summary(folder, case, rows, trained.summary(), case_data(folder, history))


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
