"""Labelled lines: the truth that confirmed bookings and review decisions give.

A labelled line is money in whose right allocation is settled:

- an `allocated` line: its confirmed allocations are the truth;
- a line marked `not_customer` or `refund` by a clerk, or `dismissed` in a
  case history: it belongs to no order and no balance ("no match").

Left out are open lines (new, review, unmatched), voided lines, lines a bank
reversal cancelled, money out, and lines whose cancelled order moved their
money to the balance (the balance is not what the payer paid for). A review
decision that a later undo withdrew is no label; the decision made after the
last undo is.

Hard negatives are the allocations a clerk replaced: the matcher's
proposals that became `rejected` allocations, allocations reversed by an
undo, and the candidates shown in a review task that the clerk did not
choose. Confirming a line rejects all its proposals and books new rows, so
an accepted proposal is `rejected` too. Only rejected allocations that
differ from the truth count.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, select

from ingest.records import (
    AllocationRecord,
    CustomerRecord,
    InvoiceRecord,
    OrderRecord,
    StatementRecord,
)
from models.money import to_cents
from models.tables import (
    Allocation,
    AuditEvent,
    Label,
    SalesOrder,
    StatementLine,
)
from service.index import (
    customer_records,
    invoice_records,
    order_record,
    statement_record,
)
from training.case import CaseData
from training.dataset import orders_before, truth_candidate_key

log = logging.getLogger("cashmatch.training")

ALLOCATED = "allocated"
NO_MATCH_STATUSES = ("not_customer", "refund", "dismissed")
LABELLED_STATUSES = (ALLOCATED, *NO_MATCH_STATUSES)
REVIEW_ACTIONS = ("accept", "choose", "split", "balance", "not_customer", "refund")
UNDO = "undo"
AUDIT_RIGHT = "audit_right"
NO_MATCH_KEY = ("", (), 0)


@dataclass
class LabelledLine:
    """One labelled statement line with its truth and the allocations replaced.

    `record.line_ref` is the line's database id as text (or the case
    history's line_ref), because line_refs repeat across files. `shown`
    contains the keys of the candidates a clerk saw, in the order shown, and
    `rejected` the keys of booked or proposed allocations that were replaced.
    """

    record: StatementRecord
    truth: list[AllocationRecord]
    source: str
    account: str = ""
    line_id: int | None = None
    shown: list[tuple] = field(default_factory=list)
    rejected: list[tuple] = field(default_factory=list)

    @property
    def line_ref(self) -> str:
        return self.record.line_ref

    @property
    def truth_key(self) -> tuple:
        """The `Candidate.key()` that the truth equals; no match is ("", (), 0)."""
        key = truth_candidate_key(self.truth)
        return key if key[0] else NO_MATCH_KEY

    @property
    def hard_negatives(self) -> list[tuple]:
        """Keys of shown candidates or replaced allocations other than the truth."""
        truth = self.truth_key
        found = [key for key in (*self.rejected, *self.shown) if key != truth]
        return list(dict.fromkeys(found))

    @property
    def corrected(self) -> bool:
        """Whether a clerk replaced what the matcher suggested or booked."""
        truth = self.truth_key
        if any(key != truth for key in self.rejected):
            return True
        return bool(self.shown) and self.shown[0] != truth

    @property
    def kind(self) -> str:
        """The shape of the truth: none, balance, order, orders, order_balance."""
        return truth_kind(self.truth)

    def truth_rows(self) -> list[dict]:
        """Return the truth as rows of the allocations output, for evaluation."""
        rows = [
            {
                "line_ref": self.line_ref,
                "customer_id": row.customer_id,
                "order_id": row.order_id,
                "target": row.target,
                "amount": row.amount,
            }
            for row in self.truth
        ]
        if rows:
            return rows
        return [
            {
                "line_ref": self.line_ref,
                "customer_id": "",
                "order_id": "",
                "target": "none",
                "amount": self.record.amount,
            }
        ]


@dataclass
class LabelCounts:
    """Counts of the labelled lines kept, by sort, and of those left out."""

    lines: int = 0
    allocated: int = 0
    no_match: int = 0
    corrected: int = 0
    hard_negatives: int = 0
    shown_candidates: int = 0
    by_source: Counter = field(default_factory=Counter)
    withdrawn_labels: int = 0
    voided_lines: int = 0
    cancelled_order_lines: int = 0

    def as_params(self) -> dict[str, int]:
        """Return the counts as flat MLflow parameters."""
        params = {
            "labels_lines": self.lines,
            "labels_allocated": self.allocated,
            "labels_no_match": self.no_match,
            "labels_corrected": self.corrected,
            "labels_hard_negatives": self.hard_negatives,
            "labels_shown_candidates": self.shown_candidates,
            "left_out_withdrawn_labels": self.withdrawn_labels,
            "left_out_voided_lines": self.voided_lines,
            "left_out_cancelled_order_lines": self.cancelled_order_lines,
        }
        for source, count in sorted(self.by_source.items()):
            params[f"labels_from_{source}"] = count
        return params


@dataclass
class LabelSet:
    """Master data and the labelled lines in booking-date order.

    `orders` carry the open amounts they have now, after every labelled line.
    """

    customers: list[CustomerRecord]
    orders: list[OrderRecord]
    invoices: list[InvoiceRecord]
    lines: list[LabelledLine]
    counts: LabelCounts

    def case_data(self, lines: list[LabelledLine] | None = None) -> CaseData:
        """Return `lines` (default all) as the history of a `CaseData`.

        `lines` are the earliest labelled lines. The orders' open amounts are
        set back to what they were after the last of them, so the later
        labelled lines have not paid them yet.
        """
        chosen = self.lines if lines is None else lines
        kept = {line.line_ref for line in chosen}
        later = [
            row
            for line in self.lines
            if line.line_ref not in kept
            for row in line.truth
        ]
        orders = orders_before(self.orders, later) if later else list(self.orders)
        return CaseData(
            customers=self.customers,
            orders=orders,
            invoices=self.invoices,
            history_lines=[line.record for line in chosen],
            history_allocations=[row for line in chosen for row in line.truth],
        )


def truth_kind(truth: list[AllocationRecord]) -> str:
    """Return the allocation shape of true rows, the payment kind of a label."""
    orders = {row.order_id for row in truth if row.target == "order"}
    balance = any(row.target == "balance" for row in truth)
    if not orders:
        return "balance" if balance else "none"
    if balance:
        return "order_balance"
    return "orders" if len(orders) > 1 else "order"


def candidate_view_key(view: dict) -> tuple:
    """Return the `Candidate.key()` of a candidate as review screens store it."""
    customer = view.get("customer_id") or ""
    if view.get("kind") == "none" or not customer:
        return NO_MATCH_KEY
    orders = tuple(
        sorted(
            (order_id, to_cents(Decimal(amount))) for order_id, amount in view["orders"]
        )
    )
    return (customer, orders, to_cents(Decimal(view.get("balance") or "0")))


# From the database -----------------------------------------------------------


def collect_labels(session: Session) -> LabelSet:
    """Read every labelled line of the database, with its hard negatives."""
    counts = LabelCounts()
    lines = _labelled_rows(session, counts)
    ids = {line.id for line in lines}
    allocations = _allocations_by_line(session, ids)
    labels = _valid_labels(session, ids, counts)

    kept = []
    for line in lines:
        labelled = _labelled_line(
            line, allocations.get(line.id, []), labels.get(line.id, [])
        )
        if labelled is not None:
            kept.append(labelled)
    _count(counts, kept)
    orders = [order_record(order) for order in session.exec(select(SalesOrder)).all()]
    log.info(
        "collected %d labelled lines (%d corrected by clerks); left out %d "
        "withdrawn labels, %d voided lines, %d lines of cancelled orders",
        counts.lines,
        counts.corrected,
        counts.withdrawn_labels,
        counts.voided_lines,
        counts.cancelled_order_lines,
    )
    return LabelSet(
        customers=customer_records(session),
        orders=orders,
        invoices=invoice_records(session),
        lines=kept,
        counts=counts,
    )


def count_labelled_lines(session: Session) -> int:
    """Count the lines with a settled allocation, without reading them."""
    query = select(func.count(StatementLine.id)).where(
        StatementLine.status.in_(LABELLED_STATUSES), StatementLine.amount > 0
    )
    return int(session.exec(query).one())


def _labelled_rows(session: Session, counts: LabelCounts) -> list[StatementLine]:
    released = _released_lines(session)
    query = (
        select(StatementLine)
        .where(StatementLine.status.in_(LABELLED_STATUSES), StatementLine.amount > 0)
        .order_by(StatementLine.booking_date, StatementLine.id)
    )
    lines = [line for line in session.exec(query).all() if line.id not in released]
    counts.cancelled_order_lines = len(released)
    voided = select(func.count(StatementLine.id)).where(
        StatementLine.status == "voided", StatementLine.amount > 0
    )
    counts.voided_lines = int(session.exec(voided).one())
    return lines


def _released_lines(session: Session) -> set[int]:
    # `release_cancelled_order` leaves an audit event per line whose order
    # allocation it moved to the customer's balance.
    query = select(AuditEvent.entity_id).where(
        AuditEvent.action == "release", AuditEvent.entity == "statement_line"
    )
    return {int(entity_id) for entity_id in session.exec(query).all() if entity_id}


def _allocations_by_line(session: Session, ids: set[int]) -> dict[int, list]:
    query = (
        select(Allocation)
        .where(Allocation.status.in_(("confirmed", "rejected", "reversed")))
        .order_by(Allocation.id)
    )
    found: dict[int, list] = defaultdict(list)
    for allocation in session.exec(query).all():
        if allocation.line_id in ids:
            found[allocation.line_id].append(allocation)
    return found


def _valid_labels(
    session: Session, ids: set[int], counts: LabelCounts
) -> dict[int, list[Label]]:
    """Return each line's labels made after its last undo, oldest first."""
    query = select(Label).order_by(Label.id)
    by_line: dict[int, list[Label]] = defaultdict(list)
    for label in session.exec(query).all():
        if label.action == UNDO:
            counts.withdrawn_labels += sum(
                1 for earlier in by_line[label.line_id] if earlier.action != UNDO
            )
            by_line[label.line_id] = []
            continue
        by_line[label.line_id].append(label)
    return {line_id: found for line_id, found in by_line.items() if line_id in ids}


def _labelled_line(
    line: StatementLine, allocations: list, labels: list[Label]
) -> LabelledLine | None:
    confirmed = [a for a in allocations if a.status == "confirmed"]
    if line.status == ALLOCATED and not confirmed:
        # An allocated line without confirmed rows has no truth to learn from.
        log.warning("line %s is allocated but has no confirmed allocation", line.id)
        return None
    if line.status != ALLOCATED:
        confirmed = []

    record = _training_record(line)
    decisions = [label for label in labels if label.action in REVIEW_ACTIONS]
    shown = []
    if decisions:
        shown = [candidate_view_key(view) for view in decisions[-1].candidates or []]
    return LabelledLine(
        record=record,
        truth=[_allocation_record(record.line_ref, a) for a in confirmed],
        source=_source(line, confirmed, labels, decisions),
        account=line.account,
        line_id=line.id,
        shown=shown,
        rejected=_replaced_keys(record.line_ref, allocations),
    )


def _training_record(line: StatementLine) -> StatementRecord:
    record = statement_record(line)
    return StatementRecord(**{**record.__dict__, "line_ref": str(line.id)})


def _allocation_record(line_ref: str, allocation: Allocation) -> AllocationRecord:
    return AllocationRecord(
        line_ref=line_ref,
        customer_id=allocation.customer_id or "",
        order_id=allocation.order_id or "",
        target=allocation.target,
        amount=allocation.amount,
    )


def _source(line, confirmed, labels, decisions) -> str:
    """Return who settled the line: review, audit, auto, history or api."""
    if decisions:
        return "review"
    if any(label.action == AUDIT_RIGHT for label in labels):
        return "audit"
    decided = {a.decision for a in confirmed} or {line.decision}
    if "auto" in decided:
        return "auto"
    if "history" in decided:
        return "history"
    return "api"


def _replaced_keys(line_ref: str, allocations: list) -> list[tuple]:
    """Return the keys of each rejected proposal and each reversed booking."""
    groups: dict[tuple, list[AllocationRecord]] = defaultdict(list)
    for allocation in allocations:
        if allocation.status == "rejected":
            # One proposal's rows share the matcher's confidence and model.
            group = ("rejected", allocation.confidence, allocation.model_version)
        elif allocation.status == "reversed":
            # One reversal marks all of a booking's rows at the same moment.
            group = ("reversed", allocation.reversed_at)
        else:
            continue
        groups[group].append(_allocation_record(line_ref, allocation))
    keys = []
    for rows in groups.values():
        key = truth_candidate_key(rows)
        keys.append(key if key[0] else NO_MATCH_KEY)
    return keys


def _count(counts: LabelCounts, lines: list[LabelledLine]) -> None:
    counts.lines = len(lines)
    for line in lines:
        if line.truth:
            counts.allocated += 1
        else:
            counts.no_match += 1
        negatives = line.hard_negatives
        counts.hard_negatives += len(negatives)
        counts.corrected += line.corrected
        counts.shown_candidates += len(line.shown)
        counts.by_source[line.source] += 1


# From a case folder ------------------------------------------------------------


def labels_from_case(data: CaseData) -> LabelSet:
    """Return a case's history as labelled lines, all from the `history` source."""
    by_line: dict[str, list[AllocationRecord]] = defaultdict(list)
    for row in data.history_allocations:
        if row.target != "none":
            by_line[row.line_ref].append(row)
    ordered = sorted(
        (line for line in data.history_lines if line.amount > 0),
        key=lambda line: (line.booking_date, line.line_ref),
    )
    lines = [
        LabelledLine(
            record=line, truth=by_line.get(line.line_ref, []), source="history"
        )
        for line in ordered
    ]
    counts = LabelCounts()
    _count(counts, lines)
    return LabelSet(
        customers=list(data.customers),
        orders=list(data.orders),
        invoices=list(data.invoices),
        lines=lines,
        counts=counts,
    )
