"""A reconciliation case in memory, and matching it end to end.

A case is what the batch case folder holds: master data, the labelled
history and the statement to match. `run_case` trains from the history when
there is one and otherwise falls back to the cold-start model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ingest.records import (
    AllocationRecord,
    CustomerRecord,
    InvoiceRecord,
    OrderRecord,
    StatementRecord,
)
from matcher.index import MatchIndex, MatchSettings
from matcher.pipeline import LineResult, Matcher, MatchModel
from training.dataset import Replay, orders_before, replay
from training.train import TrainSettings, train_model

log = logging.getLogger("cashmatch.training")


@dataclass
class CaseData:
    """Master data, labelled history and the statement lines of one case.

    `orders` carry their open amounts as of the export, that is after the
    history; `history_allocations` are the confirmed allocations of
    `history_lines`.
    """

    customers: list[CustomerRecord]
    orders: list[OrderRecord]
    invoices: list[InvoiceRecord] = field(default_factory=list)
    history_lines: list[StatementRecord] = field(default_factory=list)
    history_allocations: list[AllocationRecord] = field(default_factory=list)
    statement_lines: list[StatementRecord] = field(default_factory=list)


def history_index(
    data: CaseData, *, settings: MatchSettings | None = None
) -> MatchIndex:
    """Build the index as it was when the history began.

    Open amounts are those before any history payment, and only the orders
    placed by the first history line are in it.
    """
    start = min((line.booking_date for line in data.history_lines), default=None)
    restored = orders_before(data.orders, data.history_allocations)
    if start is None:
        return MatchIndex.build(
            data.customers, restored, data.invoices, settings=settings
        )
    # Orders placed during the history join the index when their date comes.
    early = [order for order in restored if order.order_date <= start]
    return MatchIndex.build(data.customers, early, data.invoices, settings=settings)


def replay_history(
    data: CaseData,
    *,
    settings: MatchSettings | None = None,
    label: bool = True,
    blocks: int = 0,
    workers: int | None = None,
) -> tuple[MatchIndex, Replay]:
    """Replay the history into a fresh index.

    Returns the index with the export's open amounts and what the replay
    produced: training examples (none unless `label`), the report and, with
    `blocks`, the history cut into runs for held-out matching. `workers` is
    passed on to `replay`.
    """
    index = history_index(data, settings=settings)
    restored = orders_before(data.orders, data.history_allocations)
    result = replay(
        index,
        data.history_lines,
        data.history_allocations,
        orders=restored,
        label=label,
        blocks=blocks,
        workers=workers,
    )
    index.reset_open(data.orders)
    return index, result


def train_from_history(
    data: CaseData,
    *,
    settings: MatchSettings | None = None,
    train_settings: TrainSettings | None = None,
) -> tuple[MatchModel, MatchIndex]:
    """Train a model on the history; return it and the index after the history.

    The index carries the open amounts of the export and the payer accounts
    and names that the history taught.
    """
    train_settings = train_settings or TrainSettings()
    index, result = replay_history(
        data, settings=settings, blocks=train_settings.folds
    )
    model = train_model(result.examples, train_settings, blocks=result.blocks)
    model.metrics["history_lines"] = result.report.lines
    model.metrics["history_lines_without_right_candidate"] = result.report.missed
    return model, index


def match_index(data: CaseData, *, settings: MatchSettings | None = None) -> MatchIndex:
    """Build the index to match against, learning payers from the history."""
    if not data.history_lines:
        return MatchIndex.build(
            data.customers, data.orders, data.invoices, settings=settings
        )
    index, _ = replay_history(data, settings=settings, label=False)
    return index


def run_case(data: CaseData, *, model: MatchModel | None = None) -> list[LineResult]:
    """Match a case's statement lines; return one result per line, in order.

    Without a model, a case with history trains one from it and a case
    without history uses the cold-start model.
    """
    if model is None and data.history_lines:
        model, index = train_from_history(data)
    else:
        if model is None:
            from training.cold_start import cold_start_model

            model = cold_start_model()
        index = match_index(data)
    log.info(
        "matching %d statement lines against %d open orders with model %s",
        len(data.statement_lines),
        sum(1 for order in index.orders.values() if order.open > 0),
        model.version,
    )
    return Matcher(index, model).match_batch(data.statement_lines)
