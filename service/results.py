"""Allocation rows of stored lines, in the shape of the allocations output.

A line with confirmed allocations shows them; a line in review shows the
proposed allocations of its best suggestion; any other line shows one row
with target `none` and the line's amount.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlmodel import Session, select

from models.tables import Allocation, StatementLine

SHOWN_STATUSES = ("confirmed", "proposed")


def line_rows(session: Session, lines: Sequence[StatementLine]) -> list[dict]:
    """Return the allocation rows of each line, lines in the given order."""
    allocations = _allocations_by_line(session, [line.id for line in lines])
    rows: list[dict] = []
    for line in lines:
        rows += rows_of_line(line, allocations.get(line.id, []))
    return rows


def rows_of_line(line: StatementLine, allocations: list[Allocation]) -> list[dict]:
    """Return the rows of one line from its allocations."""
    confirmed = [a for a in allocations if a.status == "confirmed"]
    shown = confirmed or [a for a in allocations if a.status == "proposed"]
    common = {
        "line_ref": line.line_ref,
        "account": line.account,
        "confidence": round(line.confidence or 0.0, 4),
        "decision": line.decision or "",
        "anomaly_score": round(line.anomaly_score or 0.0, 4),
        "anomaly_reasons": "|".join(line.anomaly_reasons or ()),
        "status": line.status,
    }
    if not shown:
        return [
            dict(common, customer_id="", order_id="", target="none", amount=line.amount)
        ]
    return [
        dict(
            common,
            customer_id=allocation.customer_id or "",
            order_id=allocation.order_id or "",
            target=allocation.target,
            amount=allocation.amount,
            allocation_id=allocation.id,
            allocation_status=allocation.status,
        )
        for allocation in sorted(shown, key=_row_order)
    ]


def _row_order(allocation: Allocation) -> tuple:
    rank = {"order": 0, "balance": 1, "fee": 2}.get(allocation.target, 3)
    return (rank, allocation.id or 0)


def _allocations_by_line(
    session: Session, line_ids: list[int]
) -> dict[int, list[Allocation]]:
    found: dict[int, list[Allocation]] = defaultdict(list)
    for start in range(0, len(line_ids), 500):
        chunk = line_ids[start : start + 500]
        query = select(Allocation).where(
            Allocation.line_id.in_(chunk), Allocation.status.in_(SHOWN_STATUSES)
        )
        for allocation in session.exec(query).all():
            found[allocation.line_id].append(allocation)
    return found
