"""Plain reports on stored lines for operators and finance leads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlmodel import Session, select

from models.tables import ReviewTask, StatementLine
from service.exports import ALLOCATION_COLUMNS, write_csv
from service.results import line_rows


def status_report(session: Session, *, out: Path | None = None) -> str:
    """Return counts of lines by status and decision; export rows to `out`."""
    lines = session.exec(select(StatementLine).order_by(StatementLine.id)).all()
    statuses = Counter(line.status for line in lines)
    decisions = Counter(line.decision or "-" for line in lines)
    open_tasks = session.exec(
        select(ReviewTask).where(ReviewTask.status == "open")
    ).all()
    text = [
        f"{len(lines)} statement lines",
        "by status: " + _counts(statuses),
        "by decision: " + _counts(decisions),
        f"open review tasks: {len(open_tasks)}",
    ]
    if out is not None:
        count = write_csv(line_rows(session, lines), ALLOCATION_COLUMNS, out)
        text.append(f"wrote {count} allocation rows to {out}")
    return "\n".join(text)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items()))
