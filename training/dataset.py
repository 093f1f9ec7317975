"""Training examples: the candidates of past lines, labelled by what was right.

History is replayed in booking-date order against an index whose open
amounts are those before the history, so each past line sees the orders as
they were when it arrived, and what earlier lines taught about payers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

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
# Below this many lines a replay or a fit stays in one process. A worker
# process spends about 3 s of CPU importing LightGBM and the matcher, and
# training on two cores starts six. On 3,000 lines (benchmarks/match_quality.py) that
# took longer than one process; the cut-off itself is an estimate.
PARALLEL_MIN_LINES = 10_000
# Runs of lines per worker process that a replay labels. More runs than
# workers even out runs that take longer, at the cost of one pickled index
# per run.
RUNS_PER_WORKER = 2

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
    workers: int | None = None,
) -> Replay:
    """Label the candidates of each past line, then book its true allocation.

    `orders` not yet in the index join it on their order date, so no past
    line is matched against an order placed after it. With `label` false
    the lines are only booked, which is enough to learn payer habits. With
    `blocks`, the lines are also cut into that many runs of booking dates,
    each kept with a copy of the index from before it.

    With more than one of `workers` (default: one per usable CPU core),
    worker processes label runs of lines while this process books the
    lines; the examples are the same as those of one process.
    """
    by_line: dict[str, list[AllocationRecord]] = defaultdict(list)
    for row in allocations:
        by_line[row.line_ref].append(row)
    pending = sorted(
        (order for order in orders if order.order_id not in index.orders),
        key=lambda order: (order.order_date, order.order_id),
    )
    ordered = sorted(lines, key=lambda line: (line.booking_date, line.line_ref))
    workers = parallel_workers(workers, len(ordered)) if label else 1
    with paused_cyclic_gc():
        if workers > 1:
            result = _replay_in_workers(
                index, ordered, by_line, pending, blocks, workers
            )
        else:
            result = _replay_here(index, ordered, by_line, pending, blocks, label)
    report = result.report
    log.info(
        "replayed %d labelled lines: %d with the right candidate, %d without",
        report.lines,
        report.covered,
        report.missed,
    )
    return result


def _replay_here(index, ordered, by_line, pending, blocks, label) -> Replay:
    examples: list[Example] = []
    report = ReplayReport()
    starts = set(block_starts(len(ordered), blocks)) if blocks else set()
    kept: list[HistoryBlock] = []
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
    return Replay(examples, report, kept)


def _replay_in_workers(index, ordered, by_line, pending, blocks, workers) -> Replay:
    """Book every line here and hand runs of lines to workers to label.

    Labelling only reads the index, so a worker that starts from a copy of
    the index before its run gets the candidates one process would get.
    """
    starts = set(block_starts(len(ordered), blocks)) if blocks else set()
    runs = block_starts(len(ordered), workers * RUNS_PER_WORKER)
    run_ends = dict(zip(runs, runs[1:] + [len(ordered)]))
    kept: list[HistoryBlock] = []
    labelled: list[Future] = []
    with worker_pool(workers) as pool:
        for position, line in enumerate(ordered):
            snapshot = None
            if position in starts or position in run_ends:
                snapshot = pickle.dumps(index)
            if position in starts:
                kept.append(HistoryBlock(snapshot, list(pending), [], by_line))
            if position in run_ends:
                run = ordered[position : run_ends[position]]
                truth = {item.line_ref: by_line.get(item.line_ref, []) for item in run}
                labelled.append(
                    pool.submit(_label_run, snapshot, list(pending), run, truth)
                )
            if kept:
                kept[-1].lines.append(line)
            pending = add_placed_orders(index, pending, line.booking_date)
            _book_truth(index, line, by_line.get(line.line_ref, []))
        parts = [future.result() for future in labelled]
    examples = [example for part, _ in parts for example in part]
    report = ReplayReport()
    for _, counts in parts:
        report.lines += counts.lines
        report.covered += counts.covered
        report.missed += counts.missed
    return Replay(examples, report, kept)


def _label_run(
    start: bytes,
    pending: list[OrderRecord],
    lines: list[StatementRecord],
    truth: dict[str, list[AllocationRecord]],
) -> tuple[list[Example], ReplayReport]:
    """Label and book a run of lines from the pickled index before the run."""
    index = pickle.loads(start)
    report = ReplayReport()
    examples = []
    with paused_cyclic_gc():
        for line in lines:
            pending = add_placed_orders(index, pending, line.booking_date)
            rows = truth[line.line_ref]
            examples.append(_label_line(index, line, rows, report))
            _book_truth(index, line, rows)
    return examples, report


def parallel_workers(workers: int | None, lines: int) -> int:
    """Return how many worker processes to use for `lines` lines; 1 means none.

    `workers` None means one per CPU core this process may run on, or none
    below PARALLEL_MIN_LINES lines.
    """
    if workers is None:
        return _usable_cores() if lines >= PARALLEL_MIN_LINES else 1
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return workers


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Start `workers` fresh Python processes for training jobs.

    They are spawned, not forked. GNU OpenMP, which LightGBM uses, can hang
    in a child forked after the parent ran OpenMP threads (GCC bug 52303).
    NOTE: a spawned worker imports the caller's main script again, so a
    script that trains needs the `if __name__ == "__main__":` guard.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


@contextmanager
def background_job(
    function: Callable[..., Any], *args: Any
) -> Iterator[Callable[[], Any]]:
    """Run `function(*args)` in a fresh Python process beside the caller.

    Yields a function that waits for the job's result and returns it. The
    process is spawned for the reason `worker_pool` gives. Leaving the block
    ends the process, so an error in the caller does not wait for the job.
    """
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_run_job, args=(writer, function, args), daemon=True
    )
    process.start()
    writer.close()
    try:
        yield lambda: _job_result(reader, process)
    finally:
        if process.is_alive():
            process.terminate()
        process.join()
        reader.close()


def _run_job(writer, function: Callable[..., Any], args: tuple) -> None:
    try:
        outcome = (True, function(*args))
    except Exception as exc:  # noqa: BLE001 - the caller raises it
        outcome = (False, f"{type(exc).__name__}: {exc}")
    writer.send(outcome)
    writer.close()


def _job_result(reader, process) -> Any:
    while not reader.poll(1.0):
        if not process.is_alive() and not reader.poll():
            raise RuntimeError(
                f"the background job ended with exit code {process.exitcode} "
                "and no result; see the log above for its error"
            )
    done, value = reader.recv()
    if not done:
        raise RuntimeError(f"the background job failed: {value}")
    return value


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
    ranker no memo statistics. These lines teach it to rank on the rest.
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
