"""Training examples: the candidates of past lines, labelled by what was right.

History is replayed in booking-date order against an index whose open
amounts are those before the history, so each past line sees the orders as
they were when it arrived, and what earlier lines taught about payers.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np

from features.pairs import candidate_matrix
from ingest.records import AllocationRecord, OrderRecord, StatementRecord
from matcher.anomaly import anomaly_features
from matcher.candidates import Candidate, block, generate
from matcher.index import MatchIndex
from models.money import to_cents

log = logging.getLogger("cashmatch.training")


@dataclass
class Example:
    """The candidates of one labelled line."""

    line_ref: str
    booking_date: date
    features: np.ndarray
    labels: np.ndarray
    kinds: list[str]
    identified: bool
    customer_id: str | None
    anomaly: list[float]
    # False when no candidate equals the truth: the line only validates,
    # as a line whose top candidate is wrong.
    covered: bool = True


@dataclass
class ReplayReport:
    """How many labelled lines had their right answer among the candidates."""

    lines: int = 0
    covered: int = 0
    missed: int = 0


def truth_candidate_key(rows: Iterable[AllocationRecord]) -> tuple:
    """Return the Candidate.key() that a line's true allocations equal."""
    customer = ""
    orders: list[tuple[str, int]] = []
    balance = 0
    for row in rows:
        if row.target == "none":
            continue
        customer = row.customer_id or customer
        if row.target == "order":
            orders.append((row.order_id, to_cents(row.amount)))
        elif row.target == "balance":
            balance += to_cents(row.amount)
    return (customer, tuple(sorted(orders)), balance)


def orders_before(
    orders: Iterable[OrderRecord], allocations: Iterable[AllocationRecord]
) -> list[OrderRecord]:
    """Return the orders with the open amounts they had before the history."""
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for row in allocations:
        if row.target in ("order", "fee") and row.order_id:
            paid[row.order_id] += row.amount
    restored = []
    for order in orders:
        extra = paid.get(order.order_id, Decimal("0"))
        if not extra:
            restored.append(order)
            continue
        open_amount = min(order.amount, order.open_amount + extra)
        status = "open" if open_amount == order.amount else "partly_paid"
        restored.append(
            OrderRecord(
                order_id=order.order_id,
                customer_id=order.customer_id,
                order_date=order.order_date,
                amount=order.amount,
                open_amount=open_amount,
                currency=order.currency,
                deposit_amount=order.deposit_amount,
                status=status,
            )
        )
    return restored


def replay(
    index: MatchIndex,
    lines: Iterable[StatementRecord],
    allocations: Iterable[AllocationRecord],
    *,
    orders: Iterable[OrderRecord] = (),
    label: bool = True,
) -> tuple[list[Example], ReplayReport]:
    """Label the candidates of each past line, then book its true allocation.

    `orders` not yet in the index join it on their order date, so no past
    line is matched against an order placed after it. With `label` false
    the lines are only booked, which is enough to learn payer habits.
    """
    by_line: dict[str, list[AllocationRecord]] = defaultdict(list)
    for row in allocations:
        by_line[row.line_ref].append(row)
    pending = sorted(
        (order for order in orders if order.order_id not in index.orders),
        key=lambda order: (order.order_date, order.order_id),
    )

    examples: list[Example] = []
    report = ReplayReport()
    ordered = sorted(lines, key=lambda line: (line.booking_date, line.line_ref))
    for line in ordered:
        pending = _add_placed_orders(index, pending, line.booking_date)
        truth = by_line.get(line.line_ref, [])
        if label:
            example = _label_line(index, line, truth, report)
            if example is not None:
                examples.append(example)
        _book_truth(index, line, truth)
    log.info(
        "replayed %d labelled lines: %d with the right candidate, %d without",
        report.lines,
        report.covered,
        report.missed,
    )
    return examples, report


def _add_placed_orders(
    index: MatchIndex, pending: list[OrderRecord], day: date
) -> list[OrderRecord]:
    """Add the pending orders placed on or before `day`; return the rest."""
    placed = 0
    while placed < len(pending) and pending[placed].order_date <= day:
        index.add_order(pending[placed])
        placed += 1
    return pending[placed:]


def _label_line(index, line, truth, report) -> Example | None:
    context = block(index, line)
    candidates = generate(index, context)
    key = truth_candidate_key(truth)
    labels = np.array([_matches(c, key) for c in candidates], dtype=np.int32)
    report.lines += 1
    covered = bool(labels.sum())
    if covered:
        report.covered += 1
        # Only the first equal candidate is the positive one.
        first = int(np.argmax(labels))
        labels[:] = 0
        labels[first] = 1
    else:
        report.missed += 1
    if len(candidates) < 2:
        # Money out and other lines with no candidate but "no match" teach
        # the ranker nothing.
        return None
    customer = key[0] or None
    return Example(
        line_ref=line.line_ref,
        booking_date=line.booking_date,
        features=candidate_matrix(index, context, candidates),
        labels=labels,
        kinds=[c.kind for c in candidates],
        identified=bool(context.customers),
        customer_id=customer,
        anomaly=anomaly_features(line, customer, {}),
        covered=covered,
    )


def _matches(candidate: Candidate, key: tuple) -> int:
    if not key[0]:
        return int(candidate.kind == "none")
    return int(candidate.key() == key)


def _book_truth(index: MatchIndex, line: StatementRecord, truth) -> None:
    customer = None
    only_balance = bool(truth)
    for row in truth:
        if row.target in ("order", "fee") and row.order_id:
            index.reduce_open(row.order_id, to_cents(row.amount))
        if row.target != "balance" and row.target != "none":
            only_balance = False
        customer = row.customer_id or customer
    if customer and line.amount > 0:
        index.learn_payer(
            customer_id=customer,
            name=line.counterparty_name,
            account=line.counterparty_account,
        )
        if only_balance:
            index.advances[customer] += 1
