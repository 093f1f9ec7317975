"""`cashmatch train`: a new model from labels, logged, registered, maybe promoted.

Labels are the lines with confirmed allocations (and the lines a clerk marked
as belonging to no customer), replayed in booking-date order so that each
line's candidates are those it had when it arrived.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, select

from ingest.records import AllocationRecord, StatementRecord
from matcher.pipeline import MatchModel
from models.errors import ModelNotReady
from models.tables import Allocation, SalesOrder, StatementLine
from service.cases import case_data, read_history
from service.index import customer_records, invoice_records, order_record
from service.settings import Settings
from training.registry import (
    log_to_mlflow,
    promote,
    record_model,
    save_model,
    serving_row,
    set_serving_alias,
)

log = logging.getLogger("cashmatch.service")

LABELLED_STATUSES = ("allocated", "dismissed")
SCORE = "validation_top1_accuracy"


@dataclass
class TrainResult:
    """What a training run produced and whether the new model serves."""

    version: str
    source: str
    labels: int
    promoted: bool
    reason: str
    metrics: dict = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def summary(self) -> str:
        """Return a few lines for the person who ran the training."""
        score = self.metrics.get(SCORE)
        shown = f"{score:.3f}" if isinstance(score, float) else "-"
        state = "serves now" if self.promoted else "not promoted"
        return (
            f"model {self.version} trained on {self.labels} labelled lines from "
            f"{self.source}; validation top-1 {shown}; {state} ({self.reason}); "
            f"MLflow run {self.mlflow_run_id or '-'}"
        )


def labelled_data(session: Session):
    """Return the database's labelled lines as a `CaseData` history."""
    from training.case import CaseData

    lines = session.exec(
        select(StatementLine)
        .where(StatementLine.status.in_(LABELLED_STATUSES), StatementLine.amount > 0)
        .order_by(StatementLine.booking_date, StatementLine.id)
    ).all()
    allocations = session.exec(
        select(Allocation).where(Allocation.status == "confirmed")
    ).all()
    known = {line.id for line in lines}
    orders = session.exec(select(SalesOrder)).all()
    return CaseData(
        customers=customer_records(session),
        orders=[order_record(order) for order in orders],
        invoices=invoice_records(session),
        history_lines=[_training_record(line) for line in lines],
        history_allocations=[
            AllocationRecord(
                line_ref=str(a.line_id),
                customer_id=a.customer_id or "",
                order_id=a.order_id or "",
                target=a.target,
                amount=a.amount,
            )
            for a in allocations
            if a.line_id in known
        ],
    )


def _training_record(line: StatementLine) -> StatementRecord:
    # line_refs repeat across files (statement.csv:17), the row id does not.
    from service.index import statement_record

    record = statement_record(line)
    return StatementRecord(**{**record.__dict__, "line_ref": str(line.id)})


def train(
    session: Session,
    settings: Settings,
    *,
    case: Path | None = None,
    promote_new: bool = True,
    force: bool = False,
) -> TrainResult:
    """Train, log to MLflow, record the model and promote it when it is better."""
    from training.case import train_from_history

    data, source = _training_data(session, settings, case)
    model, _ = train_from_history(data)
    path = save_model(model, settings.model_dir)
    run = log_to_mlflow(
        model,
        path,
        tracking_uri=settings.mlflow_tracking_uri,
        registry_name=settings.mlflow_registry_name,
        params={"source": source, "labels": len(data.history_lines), **_window(data)},
    )
    record_model(
        session,
        model,
        path,
        source=source,
        mlflow_run_id=run.run_id,
        registry_version=run.registry_version,
    )
    promoted, reason = _should_promote(session, model, promote_new, force)
    if promoted:
        promote(session, model.version, actor="train")
        if run.registry_version:
            set_serving_alias(
                settings.mlflow_tracking_uri,
                settings.mlflow_registry_name,
                run.registry_version,
            )
    return TrainResult(
        version=model.version,
        source=source,
        labels=len(data.history_lines),
        promoted=promoted,
        reason=reason,
        metrics=dict(model.metrics),
        mlflow_run_id=run.run_id,
    )


def _training_data(session: Session, settings: Settings, case: Path | None):
    if case is not None:
        history = read_history(case, settings)
        if history is None:
            raise ModelNotReady(
                f"case folder {case} has no history/statement.* and "
                "history/allocations.csv to train from"
            )
        return case_data(case, history), f"case {case.name}"

    data = labelled_data(session)
    if len(data.history_lines) < settings.min_labels:
        raise ModelNotReady(
            f"training needs at least {settings.min_labels} labelled lines and the "
            f"database has {len(data.history_lines)}; review more lines first, "
            "or train from a case folder with --case"
        )
    return data, "labels"


def _window(data) -> dict[str, str]:
    dates = [line.booking_date for line in data.history_lines]
    if not dates:
        return {}
    return {"data_from": min(dates).isoformat(), "data_to": max(dates).isoformat()}


def _should_promote(
    session: Session, model: MatchModel, promote_new: bool, force: bool
) -> tuple[bool, str]:
    if force:
        return True, "forced"
    if not promote_new:
        return False, "promotion not requested"
    current = serving_row(session)
    if current is None or current.version == model.version:
        return True, "no other model serves"
    # NOTE: the two scores come from each model's own validation split, not
    # from one shared evaluation set.
    new_score = model.metrics.get(SCORE, 0.0)
    old_score = (current.metrics or {}).get(SCORE, 0.0)
    if current.source == "cold_start" or new_score >= old_score:
        return (
            True,
            f"top-1 {new_score:.3f} against {old_score:.3f} of {current.version}",
        )
    return False, f"top-1 {new_score:.3f} is below {old_score:.3f} of {current.version}"
