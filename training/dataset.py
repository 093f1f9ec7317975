"""Training examples: the candidates of past lines, labelled by what was right.

History is replayed in booking-date order against an index whose open
amounts are those before the history, so each past line sees the orders as
they were when it arrived, and what earlier lines taught about payers.
"""

from __future__ import annotations

import logging
import pickle
import zlib
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
from matcher.pipeline import paused_cyclic_gc
from models.money import to_cents

# Share of labelled lines, in percent, whose memo statistics are hidden.
MEMO_DROPOUT_PERCENT = 25

log = logging.getLogger("cashmatch.training")


@dataclass
class Example:
    """The candidates of one labelled line."""

    line_ref: str
    booking_date: date
    features: np.ndarray
    labels: np.ndarray
    kinds: list[str]
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
        extra = paid.get(order.order_id, Decimal(0))
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


@dataclass
class HistoryBlock:
    """A run of consecutive history lines and the index as it was before them.

    `start` is the pickled index and `pending` the orders placed later, so
    the block can be matched again from that point as a statement would be.
    """

    start: bytes
    pending: list[OrderRecord]
    lines: list[StatementRecord]
    truth: dict[str, list[AllocationRecord]]


@dataclass
class Replay:
    """The results of replaying the history."""

    examples: list[Example]
    report: ReplayReport
    blocks: list[HistoryBlock]


def replay(
    index: MatchIndex,
    lines: Iterable[StatementRecord],
    allocations: Iterable[AllocationRecord],
    *,
    orders: Iterable[OrderRecord] = (),
    label: bool = True,
    blocks: int = 0,
) -> Replay:
    """Label the candidates of each past line, then book its true allocation.

    `orders` not yet in the index join it on their order date, so no past
    line is matched against an order placed after it. With `label` false
    the lines are only booked, which is enough to learn payer habits. With
    `blocks`, the lines are also cut into that many runs of booking dates,
    each kept with a copy of the index from before it.
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
    starts = set(block_starts(len(ordered), blocks)) if blocks else set()
    kept: list[HistoryBlock] = []
    with paused_cyclic_gc():
        for position, line in enumerate(ordered):
            if position in starts:
                snapshot = pickle.dumps(index)
                kept.append(HistoryBlock(snapshot, list(pending), [], by_line))
            if kept:
                kept[-1].lines.append(line)
            pending = add_placed_orders(index, pending, line.booking_date)
            truth = by_line.get(line.line_ref, [])
            if label:
                examples.append(_label_line(index, line, truth, report))
            _book_truth(index, line, truth)
    log.info(
        "replayed %d labelled lines: %d with the right candidate, %d without",
        report.lines,
        report.covered,
        report.missed,
    )
    return Replay(examples, report, kept)


def block_starts(count: int, blocks: int) -> list[int]:
    """Return the first position of each of `blocks` near-equal runs of `count`."""
    edges = np.linspace(0, count, blocks + 1).round().astype(int)
    return sorted({int(edge) for edge in edges[:-1] if edge < count})


def add_placed_orders(
    index: MatchIndex, pending: list[OrderRecord], day: date
) -> list[OrderRecord]:
    """Add the pending orders placed on or before `day` and return the rest."""
    placed = 0
    while placed < len(pending) and pending[placed].order_date <= day:
        index.add_order(pending[placed])
        placed += 1
    return pending[placed:]


def _label_line(index, line, truth, report) -> Example:
    context = block(index, line)
    if _without_memo_statistics(line):
        context.memo_odds = {}
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
    return Example(
        line_ref=line.line_ref,
        booking_date=line.booking_date,
        features=candidate_matrix(index, context, candidates),
        labels=labels,
        kinds=[c.kind for c in candidates],
        customer_id=key[0] or None,
        anomaly=anomaly_features(index, line, _truth_candidate(key)),
        covered=covered,
    )


def _without_memo_statistics(line: StatementRecord) -> bool:
    """Pick a fixed share of lines to label as if no memo had been learned.

    A new company, or memos in words the history never used, give the
    ranker no memo statistics; these lines teach it to rank on the rest.
    """
    return zlib.crc32(line.line_ref.encode()) % 100 < MEMO_DROPOUT_PERCENT


def _truth_candidate(key: tuple) -> Candidate:
    customer, orders, balance = key
    return Candidate("truth", customer or None, tuple(orders), balance)


def _matches(candidate: Candidate, key: tuple) -> int:
    if not key[0]:
        return int(candidate.kind == "none")
    return int(candidate.key() == key)


def truth_shape(index: MatchIndex, truth) -> str:
    """Return the allocation shape of a line's true rows, before they are booked."""
    customer = next((row.customer_id for row in truth if row.customer_id), "")
    if not customer:
        return "none"
    paid: dict[str, int] = defaultdict(int)
    balance = 0
    for row in truth:
        if row.target in ("order", "fee") and row.order_id:
            paid[row.order_id] += to_cents(row.amount)
        elif row.target == "balance":
            balance += to_cents(row.amount)
    if not paid:
        return "balance"
    if balance > 0:
        return "overpay"
    for order_id, cents in paid.items():
        order = index.orders.get(order_id)
        if order is not None and cents < order.open:
            return "part"
    return "order"


def _book_truth(index: MatchIndex, line: StatementRecord, truth) -> None:
    if line.amount > 0:
        index.learn_memo(line.memo, truth_shape(index, truth))
    customer = None
    only_balance = bool(truth)
    for row in truth:
        if row.target in ("order", "fee") and row.order_id:
            index.reduce_open(row.order_id, to_cents(row.amount))
        if row.target == "balance" and row.customer_id:
            index.add_to_balance(
                row.customer_id, to_cents(row.amount), line.booking_date
            )
        if row.target != "balance" and row.target != "none":
            only_balance = False
        customer = row.customer_id or customer
    if customer and line.amount > 0:
        index.learn_payer(
            customer_id=customer,
            name=line.counterparty_name,
            account=line.counterparty_account,
            amount=line.amount,
        )
        if only_balance:
            index.advances[customer] += 1
    index.recent.add(line)
