"""`cashmatch explain`: a line's candidates with their scores and reasons."""

from __future__ import annotations

from sqlmodel import Session, select

from models.errors import CashmatchError
from models.tables import StatementLine
from service.settings import Settings


class LineNotFound(CashmatchError):
    """No stored line has the given line_ref or id."""


class AmbiguousLineRef(CashmatchError):
    """More than one stored line has the given line_ref.

    The message lists the lines' ids and accounts but not how to pick one,
    because the CLI and the API each add their own way.
    """

    def __init__(self, line_ref: str, lines: list[StatementLine]):
        self.line_ref = line_ref
        self.line_ids = sorted(line.id for line in lines)
        self.accounts = sorted({line.account for line in lines})
        ids = ", ".join(str(line_id) for line_id in self.line_ids)
        super().__init__(
            f"{len(lines)} lines have line_ref {line_ref!r} (line ids {ids}; "
            f"accounts {', '.join(self.accounts)})"
        )


def find_line(
    session: Session, line_ref: str, *, account: str | None = None
) -> StatementLine:
    """Return the one stored line with this line_ref (and account).

    Raises LineNotFound when there is none, and AmbiguousLineRef when there
    are several.
    """
    query = select(StatementLine).where(StatementLine.line_ref == line_ref)
    if account:
        query = query.where(StatementLine.account == account)
    found = session.exec(query.order_by(StatementLine.id)).all()
    if not found:
        where = f" in account {account}" if account else ""
        raise LineNotFound(f"no stored line has line_ref {line_ref!r}{where}")
    if len(found) > 1:
        raise AmbiguousLineRef(line_ref, list(found))
    return found[0]


def explanation(session: Session, settings: Settings, line: StatementLine) -> dict:
    """Return the stored verdict of a line, or a fresh dry run if it has none."""
    if line.suggestion:
        return {
            "decision": line.decision,
            "confidence": line.confidence,
            "model_version": line.model_version,
            **line.suggestion,
        }
    from service.matching import match_lines
    from service.serving import current_model

    model = current_model(session, settings)
    outcome = match_lines(session, [line], model, settings, dry_run=True)[0]
    from service.matching import candidate_view

    return {
        "decision": outcome.decision,
        "confidence": outcome.result.confidence,
        "model_version": model.version,
        "reasons": outcome.reasons,
        "candidates": [
            candidate_view(scored.candidate, scored.score)
            for scored in outcome.result.ranked[:5]
        ],
    }


def explain_line(session: Session, settings: Settings, line: StatementLine) -> str:
    """Return a printable explanation of a line's candidates."""
    found = explanation(session, settings, line)
    text = [
        f"{line.line_ref}  {line.booking_date}  {line.amount} {line.currency}  "
        f"{line.counterparty_name!r}  memo {line.memo!r}",
        f"status {line.status}  decision {found['decision']}  "
        f"confidence {found['confidence'] or 0:.3f}  model {found['model_version']}",
    ]
    for number, candidate in enumerate(found["candidates"], start=1):
        orders = ", ".join(f"{oid} {amount}" for oid, amount in candidate["orders"])
        target = orders or ("balance" if candidate["customer_id"] else "no match")
        text.append(
            f"{number}. score {candidate['score']:+.3f}  {candidate['kind']:<12} "
            f"{candidate['customer_id'] or '-'}  {target}"
        )
        text += [f"     {reason}" for reason in candidate["reasons"]]
    return "\n".join(text)
