"""Gauges for Prometheus, computed from the database at each scrape.

The database is the one shared state of every worker, so counting there
gives the same numbers whichever worker Prometheus reaches.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func
from sqlmodel import Session, select

from models.money import ZERO
from models.tables import ReviewTask, StatementLine
from training.registry import serving_row

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_STATUSES = ("new", "review", "unmatched")


def metrics_text(session: Session) -> str:
    """Return the gauges in the Prometheus text exposition format."""
    blocks = [
        _gauge(
            "cashmatch_statement_lines",
            "Statement lines by status and matcher decision.",
            _lines_by_status(session),
        ),
        _gauge(
            "cashmatch_review_tasks_open",
            "Review tasks waiting for a clerk.",
            [({}, _open_tasks(session))],
        ),
        _gauge(
            "cashmatch_unmatched_amount",
            "Money in on lines not yet allocated, by account and currency.",
            _unmatched_money(session),
        ),
        _gauge(
            "cashmatch_model_info",
            "The serving model version; the value is always 1.",
            _model(session),
        ),
    ]
    return "\n".join(blocks) + "\n"


def _lines_by_status(session: Session) -> list[tuple[dict, float]]:
    query = select(
        StatementLine.status, StatementLine.decision, func.count(StatementLine.id)
    ).group_by(StatementLine.status, StatementLine.decision)
    return [
        ({"status": status, "decision": decision or "none"}, count)
        for status, decision, count in session.exec(query).all()
    ]


def _open_tasks(session: Session) -> int:
    query = select(func.count(ReviewTask.id)).where(ReviewTask.status == "open")
    return session.exec(query).one()


def _unmatched_money(session: Session) -> list[tuple[dict, float]]:
    # Amounts are summed as Decimal in Python, because the Money column
    # stores cents and a database SUM would bypass the conversion.
    query = select(
        StatementLine.account, StatementLine.currency, StatementLine.amount
    ).where(StatementLine.status.in_(UNMATCHED_STATUSES), StatementLine.amount > 0)
    totals: dict[tuple[str, str], object] = {}
    for account, currency, amount in session.exec(query).all():
        totals[(account, currency)] = totals.get((account, currency), ZERO) + amount
    return [
        ({"account": account, "currency": currency}, total)
        for (account, currency), total in sorted(totals.items())
    ]


def _model(session: Session) -> list[tuple[dict, float]]:
    row = serving_row(session)
    if row is None:
        return []
    return [({"version": row.version}, 1)]


def _gauge(name: str, help_text: str, samples: Iterable[tuple[dict, object]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        lines.append(f"{name}{_labels(labels)} {value}")
    return "\n".join(lines)


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
