"""A synthetic Chinese B2B company: master data, labelled history, statement.

`generate_case` builds customers with their names, aliases and accounts,
open sales orders, invoices, a labelled history of past months and the
statement to match, with the true allocation, the payment kind and the true
anomalies of every statement line. The same seed gives the same case.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from ingest.records import AllocationRecord
from training.case import CaseData
from training.synthetic_company import Company, build_company
from training.synthetic_lines import KINDS, LineSimulator
from training.vocabulary import VOCABULARIES

STATEMENT_START = date(2024, 11, 1)
STATEMENT_DAYS = 30
HISTORY_DAYS = 90

# Shares of statement lines per payment kind, chosen so that the baseline
# reaches about the 62-67 % allocation accuracy and 50 % automation expected
# of it on real cases; docs/benchmarks.md has the measured figures.
DEFAULT_MIX: dict[str, float] = {
    "reference": 0.23,
    "reference_typo": 0.03,
    "invoice": 0.04,
    "no_reference": 0.14,
    "alias_name": 0.06,
    "pinyin_name": 0.02,
    "personal_account": 0.05,
    "sister_company": 0.02,
    "deposit": 0.06,
    "instalment": 0.04,
    "final_payment": 0.05,
    "combination": 0.05,
    "fee": 0.04,
    "overpay": 0.03,
    "advance": 0.02,
    "same_amount": 0.04,
    "duplicate": 0.02,
    "wrong_reference": 0.01,
    "unusual_amount": 0.005,
    "other_income": 0.03,
    "money_out": 0.03,
}


@dataclass
class SyntheticCase:
    """A generated case with the truth about every statement line."""

    data: CaseData
    truth: list[AllocationRecord]
    kinds: dict[str, str]
    anomalies: dict[str, list[str]]
    history_kinds: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    vocabulary: str = "default"


def generate_case(
    *,
    seed: int = 0,
    customers: int = 300,
    open_orders: int = 5000,
    lines: int = 3000,
    history_lines: int = 3000,
    vocabulary: str = "default",
    mix: dict[str, float] | None = None,
) -> SyntheticCase:
    """Generate a company, its labelled history and a statement to match.

    `open_orders` is the number of orders still open at the export, spread
    over the customers with 5 to 50 each. `mix` gives the share of each
    payment kind among the lines (see DEFAULT_MIX); shares are normalised.
    """
    words = _vocabulary(vocabulary)
    shares = _normalised_mix(mix)
    _check_sizes(customers, open_orders, lines, history_lines)

    rng = random.Random(seed)
    company = build_company(
        rng,
        words,
        customers=customers,
        open_orders=open_orders,
        statement_start=STATEMENT_START,
    )
    simulator = LineSimulator(rng, company, words)
    history = simulator.simulate(
        count=history_lines,
        shares=shares,
        start=STATEMENT_START - timedelta(days=HISTORY_DAYS),
        days=HISTORY_DAYS,
        prefix="H",
        history=True,
    )
    company.close_history(rng, target_open=open_orders)
    # The ERP export is taken between the history and the statement.
    export = company.order_records()
    statement = simulator.simulate(
        count=lines,
        shares=shares,
        start=STATEMENT_START,
        days=STATEMENT_DAYS,
        prefix="L",
        history=False,
    )
    return _assemble(
        company, export, history, statement, seed=seed, vocabulary=vocabulary
    )


def _vocabulary(name: str):
    if name not in VOCABULARIES:
        known = ", ".join(sorted(VOCABULARIES))
        raise ValueError(f"unknown vocabulary {name!r}; use one of: {known}")
    return VOCABULARIES[name]


def _normalised_mix(mix: dict[str, float] | None) -> dict[str, float]:
    chosen = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(chosen) - set(KINDS))
    if unknown:
        raise ValueError(
            f"unknown payment kinds in mix: {', '.join(unknown)}; "
            f"use any of: {', '.join(KINDS)}"
        )
    if any(share < 0 for share in chosen.values()):
        raise ValueError(f"mix shares must not be negative, got {chosen}")
    total = sum(chosen.values())
    if total <= 0:
        raise ValueError("mix shares add up to 0; give at least one kind a share")
    return {kind: share / total for kind, share in chosen.items() if share > 0}


def _check_sizes(customers: int, open_orders: int, lines: int, history: int) -> None:
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if not 5 * customers <= open_orders <= 50 * customers:
        raise ValueError(
            f"open_orders={open_orders} does not fit {customers} customers with "
            f"5 to 50 open orders each; use {5 * customers} to {50 * customers}"
        )
    if lines < 0 or history < 0:
        raise ValueError(
            f"line counts must not be negative, got lines={lines}, "
            f"history_lines={history}"
        )


def _assemble(company: Company, export, history, statement, *, seed, vocabulary):
    data = CaseData(
        customers=company.customer_records(),
        orders=export,
        invoices=company.invoice_records(),
        history_lines=[line.record for line in history],
        history_allocations=[row for line in history for row in line.truth],
        statement_lines=[line.record for line in statement],
    )
    return SyntheticCase(
        data=data,
        truth=[row for line in statement for row in line.truth],
        kinds={line.record.line_ref: line.kind for line in statement},
        anomalies={line.record.line_ref: list(line.anomalies) for line in statement},
        history_kinds={line.record.line_ref: line.kind for line in history},
        seed=seed,
        vocabulary=vocabulary,
    )


STATEMENT_COLUMNS = (
    "line_ref",
    "booking_date",
    "amount",
    "currency",
    "counterparty_name",
    "counterparty_account",
    "memo",
    "bank_reference",
)
ALLOCATION_COLUMNS = ("line_ref", "customer_id", "order_id", "target", "amount")


def write_case(case: SyntheticCase, folder: Path) -> None:
    """Write a case as a batch case folder, with truth.csv beside it.

    truth.csv has the allocation columns plus `kind` (the payment kind) and
    `anomaly_reasons` (the true alerts, `|`-separated).
    """
    folder = Path(folder)
    (folder / "history").mkdir(parents=True, exist_ok=True)
    data = case.data
    _write(
        folder / "customers.csv",
        ("customer_id", "name", "aliases", "bank_accounts"),
        (_customer_row(c) for c in data.customers),
    )
    _write(
        folder / "orders.csv",
        (
            "order_id",
            "customer_id",
            "order_date",
            "amount",
            "open_amount",
            "currency",
            "deposit_amount",
            "status",
        ),
        (_order_row(o) for o in data.orders),
    )
    _write(
        folder / "invoices.csv",
        ("invoice_id", "order_ids", "amount", "issue_date"),
        (_invoice_row(i) for i in data.invoices),
    )
    _write(
        folder / "history" / "statement.csv",
        STATEMENT_COLUMNS,
        (_line_row(line) for line in data.history_lines),
    )
    _write(
        folder / "history" / "allocations.csv",
        ALLOCATION_COLUMNS,
        (_allocation_row(row) for row in data.history_allocations),
    )
    _write(
        folder / "statement.csv",
        STATEMENT_COLUMNS,
        (_line_row(line) for line in data.statement_lines),
    )
    _write(
        folder / "truth.csv",
        ALLOCATION_COLUMNS + ("kind", "anomaly_reasons"),
        (_truth_row(case, row) for row in case.truth),
    )


def _write(path: Path, columns, rows) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)


def _customer_row(customer) -> list[str]:
    return [
        customer.customer_id,
        customer.name,
        "|".join(customer.aliases),
        "|".join(customer.bank_accounts),
    ]


def _order_row(order) -> list[str]:
    deposit = "" if order.deposit_amount is None else str(order.deposit_amount)
    return [
        order.order_id,
        order.customer_id,
        order.order_date.isoformat(),
        str(order.amount),
        str(order.open_amount),
        order.currency,
        deposit,
        order.status,
    ]


def _invoice_row(invoice) -> list[str]:
    issued = invoice.issue_date.isoformat() if invoice.issue_date else ""
    return [
        invoice.invoice_id,
        "|".join(invoice.order_ids),
        str(invoice.amount),
        issued,
    ]


def _line_row(line) -> list[str]:
    return [
        line.line_ref,
        line.booking_date.isoformat(),
        str(line.amount),
        line.currency,
        line.counterparty_name,
        line.counterparty_account,
        line.memo,
        line.bank_reference,
    ]


def _allocation_row(row: AllocationRecord) -> list[str]:
    return [row.line_ref, row.customer_id, row.order_id, row.target, str(row.amount)]


def _truth_row(case: SyntheticCase, row: AllocationRecord) -> list[str]:
    reasons = "|".join(case.anomalies.get(row.line_ref, ()))
    return _allocation_row(row) + [case.kinds.get(row.line_ref, ""), reasons]
