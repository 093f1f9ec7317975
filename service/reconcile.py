"""`cashmatch reconcile`: one case folder in, the allocations output out.

Without `--database` the run uses a fresh temporary database, so the same
folder always gives the same output.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session

from matcher.pipeline import MatchModel
from models.db import make_engine, migrate, session_scope
from service.cases import (
    case_data,
    find_statement,
    load_master_folder,
    read_history,
    read_statement_file,
    store_history,
    store_statement_file,
)
from service.exports import ALLOCATION_COLUMNS, check_table_suffix, write_table
from service.matching import match_lines
from service.results import line_rows
from service.serving import current_model
from service.settings import Settings
from training.registry import promote, record_model, save_model

log = logging.getLogger("cashmatch.service")


@dataclass
class ReconcileReport:
    """Summary of a reconcile run: lines, decisions, model and output rows."""

    lines: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    model_version: str = ""
    model_source: str = ""
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def reconcile(
    folder: Path,
    *,
    out: Path | None = None,
    statement: Path | None = None,
    database_url: str | None = None,
    settings: Settings | None = None,
) -> ReconcileReport:
    """Reconcile a case folder and write the allocations output to `out`.

    `out` is a .csv or .xlsx file. Raises UnsupportedTableFormat for any
    other suffix before the run starts.
    """
    if out is not None:
        check_table_suffix(out)
    settings = settings or Settings()
    statement = statement or find_statement(folder)
    with tempfile.TemporaryDirectory(prefix="cashmatch-") as scratch:
        if database_url is None:
            database_url = f"sqlite:///{Path(scratch) / 'cashmatch.db'}"
            settings = settings.model_copy(
                update={
                    "data_dir": Path(scratch),
                    "cold_start_dir": settings.cold_start_cache,
                }
            )
        settings = settings.model_copy(update={"database_url": database_url})
        report = _run(folder, statement, settings)
    if out is not None:
        write_table(report.rows, ALLOCATION_COLUMNS, out, title="allocations")
    return report


def _run(folder: Path, statement: Path, settings: Settings) -> ReconcileReport:
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        with session_scope(engine) as session:
            load_master_folder(session, folder)
            model, source = model_for_case(session, folder, settings, actor="reconcile")
            report = match_statement(session, statement, model, settings)
            report.model_source = source
        return report
    finally:
        engine.dispose()


def model_for_case(
    session: Session, folder: Path, settings: Settings, *, actor: str
) -> tuple[MatchModel, str]:
    """Train on the folder's history and serve it, or use the serving model."""
    history = read_history(folder, settings)
    if history is None:
        return current_model(session, settings), "cold_start"

    from training.case import train_from_history

    model, _ = train_from_history(case_data(folder, history))
    store_history(session, history, settings)
    path = save_model(model, settings.model_dir)
    record_model(session, model, path, source="history")
    promote(session, model.version, actor=actor)
    return model, "history"


def match_statement(
    session: Session, path: Path, model: MatchModel, settings: Settings
) -> ReconcileReport:
    """Import a statement file, match its new lines and collect every row."""
    imported, lines = store_statement_file(
        session, read_statement_file(path), settings, actor="reconcile"
    )
    new_ids = set(imported.line_ids)
    fresh = [line for line in lines if line.id in new_ids]
    outcomes = match_lines(session, fresh, model, settings)

    report = ReconcileReport(lines=len(lines), model_version=model.version)
    for outcome in outcomes:
        count = report.decisions.get(outcome.decision, 0)
        report.decisions[outcome.decision] = count + 1
    report.rows = line_rows(session, lines)
    report.notes = imported.notes
    log.info(
        "reconciled %s: %d lines, decisions %s, model %s",
        path.name,
        report.lines,
        report.decisions,
        model.version,
    )
    return report
