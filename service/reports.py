"""Reports on stored lines and prepayment balances for finance leads.

- `status_report`: counts of lines by status and decision.
- `balance_rows`: prepayment balances by customer with ageing buckets.
- `unmatched_rows`: money no customer or order has taken yet.
- `customer_anomalies` and `anomaly_rows`: anomalies per customer and by kind.
- `reminder_rows`: unused balances and duplicate payments awaiting refund.
- `reconciliation`: one bank account's month, tied from the bank's balances
  through the allocations to the ledger, with every difference listed.

`report_table` returns any of them as columns and rows for the CSV and XLSX
writers in `service.exports`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, select

from matcher.anomaly import ALERTS
from models.money import ZERO
from models.tables import (
    Allocation,
    Customer,
    ImportBatch,
    LedgerEntry,
    LedgerRequest,
    ReviewTask,
    StatementLine,
)
from service import ledger
from service.exports import STORED_ALLOCATION_COLUMNS, write_table
from service.results import line_rows

# (column, first day, last day) of each ageing bucket; None is open-ended.
AGE_BUCKETS = (
    ("days_0_30", 0, 30),
    ("days_31_60", 31, 60),
    ("days_61_90", 61, 90),
    ("days_over_90", 91, None),
)
OPEN_LINE_STATUSES = ("new", "review", "unmatched")
# The `direction` of an unmatched line.
MONEY_IN = "money_in"
MONEY_OUT = "money_out"
# The places a statement line's money can be in. Every line's places add up
# to its amount. `unmatched` is the money in of open lines and
# `unmatched_out` their money out, so salaries and bills never net against
# receipts. `difference` is what no place explains, and it should be 0.
PLACES = (
    "order",
    "balance",
    "fee",
    "refund",
    "unmatched",
    "unmatched_out",
    "not_customer",
    "reversal",
    "difference",
)
STATUS_PLACES = {
    "new": "unmatched",
    "review": "unmatched",
    "unmatched": "unmatched",
    "not_customer": "not_customer",
    "dismissed": "not_customer",
    "refund": "refund",
    "fee": "fee",
    "reversal": "reversal",
    "reversed": "reversal",
}
DEFAULT_FEE_MAX = Decimal("50.00")


def status_report(session: Session, *, out: Path | None = None) -> str:
    """Return counts of lines by status and decision; export rows to `out`.

    `out` is a .csv or .xlsx file of the allocations of every stored line.
    """
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
        rows = line_rows(session, lines)
        count = write_table(
            rows, STORED_ALLOCATION_COLUMNS, out, title="allocations"
        )
        text.append(f"wrote {count} allocation rows to {out}")
    return "\n".join(text)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items()))


def _names(session: Session) -> dict[str, str]:
    return dict(session.exec(select(Customer.customer_id, Customer.name)).all())


def _age(as_of: date, day: date) -> int:
    return max((as_of - day).days, 0)


# Balances and ageing -------------------------------------------------------------

BALANCE_COLUMNS = (
    "customer_id",
    "name",
    "balance",
    *(name for name, _, _ in AGE_BUCKETS),
    "oldest_day",
    "age_days",
)


def bucket_of(age_days: int) -> str:
    """Return the ageing bucket of money that is `age_days` old."""
    for name, first, last in AGE_BUCKETS:
        if age_days >= first and (last is None or age_days <= last):
            return name
    return AGE_BUCKETS[0][0]


def balance_rows(session: Session, *, as_of: date) -> list[dict]:
    """Return each customer's balance on `as_of`, split by the age of its money.

    Only ledger entries booked on or before `as_of` count, and ages are
    counted to that day. Money is used first in, first out (see
    `ledger.balance_layers`), so the buckets hold what is left of each
    receipt. Customers with a zero balance are left out; the largest
    balance comes first.
    """
    names = _names(session)
    rows = []
    layers_by_customer = ledger.balance_layers(session, booked_to=as_of)
    for customer_id, layers in layers_by_customer.items():
        total = sum((layer.amount for layer in layers), ZERO)
        if total == 0:
            continue
        row = {name: ZERO for name, _, _ in AGE_BUCKETS}
        for layer in layers:
            row[bucket_of(_age(as_of, layer.day))] += layer.amount
        oldest = min(layer.day for layer in layers)
        row.update(
            customer_id=customer_id,
            name=names.get(customer_id, ""),
            balance=total,
            oldest_day=oldest.isoformat(),
            age_days=_age(as_of, oldest),
        )
        rows.append(row)
    rows.sort(key=lambda row: (-row["balance"], row["customer_id"]))
    return rows


def ageing_totals(rows: Sequence[dict]) -> dict[str, Decimal]:
    """Return the sum of each ageing bucket over balance rows."""
    return {name: sum((row[name] for row in rows), ZERO) for name, _, _ in AGE_BUCKETS}


# Unmatched and unidentified money -----------------------------------------------

UNMATCHED_COLUMNS = (
    "line_ref",
    "account",
    "booking_date",
    "amount",
    "direction",
    "currency",
    "counterparty_name",
    "counterparty_account",
    "memo",
    "status",
    "decision",
    "identified",
    "candidate_customer_id",
    "age_days",
    "anomaly_reasons",
)


def unmatched_rows(
    session: Session, *, as_of: date, account: str | None = None
) -> list[dict]:
    """Return the open lines: money in, then money out, each oldest first.

    `direction` is `money_in` or `money_out`. Money out on an open line is
    no customer's money until a clerk marks it a refund or a fee, so it is
    kept apart from the receipts. A line is identified when the matcher
    found a customer for it, so a clerk can usually book it from the review
    queue. An unidentified line needs someone to find the payer.
    """
    query = select(StatementLine).where(StatementLine.status.in_(OPEN_LINE_STATUSES))
    if account:
        query = query.where(StatementLine.account == account)
    query = query.order_by(StatementLine.booking_date, StatementLine.id)
    rows = [_unmatched_row(line, as_of) for line in session.exec(query).all()]

    # The sort is stable, so each direction stays oldest first.
    rows.sort(key=lambda row: row["direction"] != MONEY_IN)
    return rows


def _unmatched_row(line: StatementLine, as_of: date) -> dict:
    customer_id = candidate_customer(line)
    reasons = line.anomaly_reasons or []
    return {
        "line_ref": line.line_ref,
        "account": line.account,
        "booking_date": line.booking_date.isoformat(),
        "amount": line.amount,
        "direction": MONEY_OUT if line.amount < 0 else MONEY_IN,
        "currency": line.currency,
        "counterparty_name": line.counterparty_name,
        "counterparty_account": line.counterparty_account,
        "memo": line.memo,
        "status": line.status,
        "decision": line.decision or "",
        "identified": bool(customer_id) and "unidentified" not in reasons,
        "candidate_customer_id": customer_id or "",
        "age_days": _age(as_of, line.booking_date),
        "anomaly_reasons": "|".join(reasons),
    }


def candidate_customer(line: StatementLine) -> str | None:
    """Return the line's booked customer, else its best candidate's customer."""
    if line.customer_id:
        return line.customer_id
    for candidate in (line.suggestion or {}).get("candidates", []):
        if candidate.get("customer_id"):
            return candidate["customer_id"]
    return None


def unmatched_totals(rows: Sequence[dict]) -> dict[str, Decimal]:
    """Return unmatched money in and out, identified or not."""
    totals = {
        "identified_in": ZERO,
        "unidentified_in": ZERO,
        "money_out": ZERO,
    }
    for row in rows:
        if row["amount"] < 0:
            totals["money_out"] += row["amount"]
        elif row["identified"]:
            totals["identified_in"] += row["amount"]
        else:
            totals["unidentified_in"] += row["amount"]
    return totals


# Anomalies per customer ------------------------------------------------------------


@dataclass
class CustomerAnomaly:
    """A customer-level anomaly with its reason, amount and the lines behind it.

    `kind` comes from the matcher's fixed list of reasons: `unused_balance`,
    `duplicate` (a repeat payment awaiting refund) or `over_advance`.
    """

    customer_id: str
    name: str
    kind: str
    amount: Decimal
    since: date
    age_days: int
    detail: str
    line_refs: list[str] = field(default_factory=list)


def customer_anomalies(
    session: Session,
    *,
    as_of: date,
    unused_days: int,
    fee_max: Decimal = DEFAULT_FEE_MAX,
    customer_id: str | None = None,
) -> list[CustomerAnomaly]:
    """Return each customer's anomalies, by customer and kind."""
    names = _names(session)
    found = _unused_balances(session, as_of, unused_days, names)
    found += _duplicate_anomalies(session, as_of, names)
    found += _over_advances(session, as_of, fee_max, names)
    if customer_id is not None:
        found = [anomaly for anomaly in found if anomaly.customer_id == customer_id]
    found.sort(key=lambda a: (a.customer_id, a.kind))
    return found


def line_anomalies(
    session: Session, customer_id: str, *, limit: int = 100
) -> list[StatementLine]:
    """Return a customer's newest lines that carry anomaly reasons."""
    query = (
        select(StatementLine)
        .where(
            StatementLine.customer_id == customer_id,
            StatementLine.status != "voided",
        )
        .order_by(StatementLine.booking_date.desc(), StatementLine.id.desc())
    )
    # NOTE: the reasons are a JSON list, so lines without reasons are skipped
    # here in Python, after the query.
    found = [line for line in session.exec(query).all() if line.anomaly_reasons]
    return found[:limit]


def _unused_balances(
    session: Session, as_of: date, unused_days: int, names: dict[str, str]
) -> list[CustomerAnomaly]:
    found = []
    layers_by_customer = ledger.balance_layers(session, booked_to=as_of)
    for customer_id, layers in layers_by_customer.items():
        total = sum((layer.amount for layer in layers), ZERO)
        old = [
            layer
            for layer in layers
            if layer.amount > 0 and _age(as_of, layer.day) > unused_days
        ]
        amount = min(sum((layer.amount for layer in old), ZERO), total)
        if amount <= 0:
            continue
        since = min(layer.day for layer in old)
        age = _age(as_of, since)
        found.append(
            CustomerAnomaly(
                customer_id=customer_id,
                name=names.get(customer_id, ""),
                kind="unused_balance",
                amount=amount,
                since=since,
                age_days=age,
                detail=f"{amount} of a balance of {total} is unused for more "
                f"than {unused_days} days; the oldest is {age} days old",
            )
        )
    return found


def _duplicate_anomalies(
    session: Session, as_of: date, names: dict[str, str]
) -> list[CustomerAnomaly]:
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for row in duplicates_awaiting_refund(session, as_of=as_of):
        by_customer[row["customer_id"]].append(row)
    found = []
    for customer_id, rows in by_customer.items():
        amount = sum((row["amount"] for row in rows), ZERO)
        found.append(
            CustomerAnomaly(
                customer_id=customer_id,
                name=names.get(customer_id, ""),
                kind="duplicate",
                amount=amount,
                since=date.fromisoformat(min(row["booking_date"] for row in rows)),
                age_days=max(row["age_days"] for row in rows),
                detail=f"{len(rows)} repeat payment(s) of {amount} awaiting refund",
                line_refs=[row["line_ref"] for row in rows],
            )
        )
    return found


def _over_advances(
    session: Session, as_of: date, fee_max: Decimal, names: dict[str, str]
) -> list[CustomerAnomaly]:
    """Find lines that paid orders in full and left money over on the balance.

    A remainder up to `fee_max` is not counted, so rounding up by a few yuan
    is no anomaly, unless the matcher flagged the line `over_advance`. A
    stored history's allocations are left out, because the ledger does not
    have their money.
    """
    by_line: dict[int, list[Allocation]] = defaultdict(list)
    confirmed = select(Allocation).where(Allocation.status == "confirmed")
    for allocation in session.exec(confirmed).all():
        if allocation.decision != "history":
            by_line[allocation.line_id].append(allocation)
    lines = _lines_by_id(session, list(by_line))
    by_customer: dict[str, list[tuple[StatementLine, Decimal]]] = defaultdict(list)
    for line_id, allocations in by_line.items():
        line = lines.get(line_id)
        orders = [a for a in allocations if a.target == "order"]
        over = sum((a.amount for a in allocations if a.target == "balance"), ZERO)
        if line is None or not orders or over <= 0:
            continue
        if over > fee_max or "over_advance" in (line.anomaly_reasons or ()):
            by_customer[orders[0].customer_id].append((line, over))
    return [
        CustomerAnomaly(
            customer_id=customer_id,
            name=names.get(customer_id, ""),
            kind="over_advance",
            amount=sum((over for _, over in pairs), ZERO),
            since=min(line.booking_date for line, _ in pairs),
            age_days=max(_age(as_of, line.booking_date) for line, _ in pairs),
            detail=f"{len(pairs)} payment(s) beyond the total of the orders they "
            "paid; the rest is on the balance",
            line_refs=[line.line_ref for line, _ in pairs],
        )
        for customer_id, pairs in by_customer.items()
    ]


def _lines_by_id(session: Session, line_ids: list[int]) -> dict[int, StatementLine]:
    found: dict[int, StatementLine] = {}
    for start in range(0, len(line_ids), 500):
        chunk = line_ids[start : start + 500]
        query = select(StatementLine).where(StatementLine.id.in_(chunk))
        found.update((line.id, line) for line in session.exec(query).all())
    return found


DUPLICATE_COLUMNS = (
    "customer_id",
    "name",
    "line_ref",
    "booking_date",
    "amount",
    "age_days",
    "state",
    "request_id",
)


def duplicates_awaiting_refund(session: Session, *, as_of: date) -> list[dict]:
    """Return repeat payments whose money has not gone back to the payer.

    Two kinds count: a line a clerk marked for refund that no money-out
    line has paid back yet, and a line flagged `duplicate` whose money sits
    on the customer's balance with no refund asked for.
    """
    names = _names(session)
    requests = _refund_requests_by_source(session)
    rows = [
        row
        for line in _lines_with_status(session, "refund")
        if (row := _marked_refund_row(line, requests.get(line.id, []), as_of))
    ]
    rows += _duplicates_on_balance(session, requests, as_of)
    for row in rows:
        row["name"] = names.get(row["customer_id"], "")
    rows.sort(key=lambda row: (row["booking_date"], row["line_ref"]))
    return rows


def _refund_requests_by_source(session: Session) -> dict[int, list[LedgerRequest]]:
    found: dict[int, list[LedgerRequest]] = defaultdict(list)
    query = select(LedgerRequest).where(
        LedgerRequest.kind == "refund", LedgerRequest.source_line_id.is_not(None)
    )
    for request in session.exec(query).all():
        found[request.source_line_id].append(request)
    return found


def _lines_with_status(session: Session, status: str) -> list[StatementLine]:
    query = select(StatementLine).where(
        StatementLine.status == status, StatementLine.amount > 0
    )
    return list(session.exec(query.order_by(StatementLine.id)).all())


def _marked_refund_row(
    line: StatementLine, requests: list[LedgerRequest], as_of: date
) -> dict | None:
    paid = sum(
        (r.amount for r in requests if r.payment_line_id and r.status == "approved"),
        ZERO,
    )
    if line.amount - paid <= 0:
        return None
    open_request = next(
        (r for r in requests if r.status in ("pending", "approved")), None
    )
    return _duplicate_row(
        line,
        candidate_customer(line) or "",
        line.amount - paid,
        "marked for refund",
        open_request,
        as_of,
    )


def _duplicates_on_balance(
    session: Session, requests: dict[int, list[LedgerRequest]], as_of: date
) -> list[dict]:
    query = (
        select(StatementLine, Allocation)
        .join(Allocation, Allocation.line_id == StatementLine.id)
        .where(Allocation.status == "confirmed", Allocation.target == "balance")
    )
    balances: dict[str, Decimal] = {}
    rows = []
    for line, allocation in session.exec(query.order_by(StatementLine.id)).all():
        if "duplicate" not in (line.anomaly_reasons or ()):
            continue
        requested = [r for r in requests.get(line.id, []) if r.status != "rejected"]
        if requested:
            continue
        customer_id = allocation.customer_id
        if customer_id not in balances:
            balances[customer_id] = ledger.balance(session, customer_id)
        amount = min(allocation.amount, balances[customer_id])
        if amount <= 0:
            continue
        balances[customer_id] -= amount
        rows.append(
            _duplicate_row(line, customer_id, amount, "on balance", None, as_of)
        )
    return rows


def _duplicate_row(
    line: StatementLine,
    customer_id: str,
    amount: Decimal,
    state: str,
    request: LedgerRequest | None,
    as_of: date,
) -> dict:
    return {
        "customer_id": customer_id,
        "line_ref": line.line_ref,
        "line_id": line.id,
        "booking_date": line.booking_date.isoformat(),
        "amount": amount,
        "age_days": _age(as_of, line.booking_date),
        "state": state if request is None else f"{state}, request {request.status}",
        "request_id": request.id if request else None,
    }


ANOMALY_COLUMNS = ("level", "kind", "severity", "count", "amount")


def anomaly_rows(
    session: Session,
    *,
    as_of: date,
    unused_days: int,
    fee_max: Decimal = DEFAULT_FEE_MAX,
) -> list[dict]:
    """Return anomalies by kind: line reasons from the matcher, then customers'."""
    counts: Counter[str] = Counter()
    amounts: dict[str, Decimal] = defaultdict(lambda: ZERO)
    query = select(StatementLine.anomaly_reasons, StatementLine.amount).where(
        StatementLine.status != "voided"
    )
    for reasons, amount in session.exec(query).all():
        for reason in reasons or ():
            counts[reason] += 1
            amounts[reason] += amount
    rows = [
        _anomaly_row("line", kind, counts[kind], amounts[kind])
        for kind in sorted(counts)
    ]
    per_customer: dict[str, list[CustomerAnomaly]] = defaultdict(list)
    for anomaly in customer_anomalies(
        session, as_of=as_of, unused_days=unused_days, fee_max=fee_max
    ):
        per_customer[anomaly.kind].append(anomaly)
    rows += [
        _anomaly_row("customer", kind, len(found), sum((a.amount for a in found), ZERO))
        for kind, found in sorted(per_customer.items())
    ]
    return rows


def _anomaly_row(level: str, kind: str, count: int, amount: Decimal) -> dict:
    return {
        "level": level,
        "kind": kind,
        "severity": "alert" if kind in ALERTS else "note",
        "count": count,
        "amount": amount,
    }


# Reminders -------------------------------------------------------------------------

REMINDER_COLUMNS = (
    "kind",
    "customer_id",
    "name",
    "amount",
    "since",
    "age_days",
    "line_ref",
    "request_id",
    "detail",
)


def reminder_rows(session: Session, *, as_of: date, unused_days: int) -> list[dict]:
    """Return whom to remind: unused balances, then repeat payments to refund."""
    rows = []
    for anomaly in _unused_balances(session, as_of, unused_days, _names(session)):
        rows.append(
            {
                "kind": "unused_balance",
                "customer_id": anomaly.customer_id,
                "name": anomaly.name,
                "amount": anomaly.amount,
                "since": anomaly.since.isoformat(),
                "age_days": anomaly.age_days,
                "line_ref": "",
                "request_id": None,
                "detail": anomaly.detail,
            }
        )
    rows.sort(key=lambda row: (-row["age_days"], row["customer_id"]))
    for duplicate in duplicates_awaiting_refund(session, as_of=as_of):
        rows.append(
            {
                "kind": "duplicate",
                "customer_id": duplicate["customer_id"],
                "name": duplicate["name"],
                "amount": duplicate["amount"],
                "since": duplicate["booking_date"],
                "age_days": duplicate["age_days"],
                "line_ref": duplicate["line_ref"],
                "request_id": duplicate["request_id"],
                "detail": duplicate["state"],
            }
        )
    return rows


# Where each line's money is ---------------------------------------------------------


def line_places(
    session: Session, lines: Sequence[StatementLine]
) -> dict[int, dict[str, Decimal]]:
    """Return, per line, how much of its amount is in each place of PLACES.

    An allocated line's money is in its confirmed order and balance
    allocations (a fee allocation is the bank's shortfall, not money from
    the line). Other lines are wholly in the place their status names,
    except that an open line's money out is in `unmatched_out`. Whatever
    that leaves of a line's amount is its `difference`.
    """
    confirmed = _confirmed_by_line(session, [line.id for line in lines])
    places: dict[int, dict[str, Decimal]] = {}
    for line in lines:
        found: dict[str, Decimal] = defaultdict(lambda: ZERO)
        if line.status == "allocated":
            for allocation in confirmed.get(line.id, []):
                if allocation.target in ("order", "balance"):
                    found[allocation.target] += allocation.amount
        else:
            found[_status_place(line)] += line.amount
        explained = sum(found.values(), ZERO)
        if explained != line.amount:
            found["difference"] += line.amount - explained
        places[line.id] = dict(found)
    return places


def _status_place(line: StatementLine) -> str:
    place = STATUS_PLACES.get(line.status, "difference")
    if place == "unmatched" and line.amount < 0:
        return "unmatched_out"
    return place


def _confirmed_by_line(
    session: Session, line_ids: list[int]
) -> dict[int, list[Allocation]]:
    found: dict[int, list[Allocation]] = defaultdict(list)
    for start in range(0, len(line_ids), 500):
        chunk = line_ids[start : start + 500]
        query = select(Allocation).where(
            Allocation.line_id.in_(chunk), Allocation.status == "confirmed"
        )
        for allocation in session.exec(query).all():
            found[allocation.line_id].append(allocation)
    return found


# Monthly reconciliation --------------------------------------------------------------

# Sources of a reconciliation's closing day: the date the statement gives
# its closing balance, or the day of the statement's last line.
BALANCE_DATE = "balance_date"
LAST_LINE = "last_line"


@dataclass
class Difference:
    """One thing that does not tie, with the amount it is off by."""

    kind: str
    amount: Decimal
    line_ref: str = ""
    detail: str = ""


@dataclass
class Reconciliation:
    """A bank account's month tied from the bank through allocations to the ledger.

    `opening_balance` and `closing_balance` come from imported statements
    (None when no statement gave them). `closing_day` is the day the closing
    balance is for. `closing_day_source` is `BALANCE_DATE` when that is the
    date the statement gives its closing balance, or `LAST_LINE` when it is
    the day of the statement's last line. `places` splits the month's lines
    by where their money is. `ledger_receipts` is what the ledger holds for
    the balance allocations of these lines. `ledger_movement` is the whole
    ledger's entries booked in the month by kind, over all accounts.
    """

    account: str
    month: str
    opening_balance: Decimal | None
    closing_balance: Decimal | None
    closing_day: date | None
    closing_day_source: str | None
    lines: int
    lines_total: Decimal
    money_in: Decimal
    money_out: Decimal
    places: dict[str, Decimal]
    balance_allocations: Decimal
    ledger_receipts: Decimal
    ledger_movement: dict[str, Decimal]
    differences: list[Difference]

    @property
    def tied(self) -> bool:
        """Whether bank, allocations and ledger agree to the cent."""
        return not self.differences


def reconciliation(session: Session, *, account: str, month: str) -> Reconciliation:
    """Reconcile one bank account for one month and list every difference.

    Three ties are checked. The statement's opening balance plus the lines
    equals its closing balance. Each line's money is in exactly one place
    (`line_places`). The balance allocations of each line equal its receipts
    net of reversals in the ledger. Allocations as they stand now count, so
    a correction booked in a later month shows here too.
    """
    first = ledger.parse_month(month)
    last = ledger.month_end(first)
    lines = _month_lines(session, account, first, last)
    differences: list[Difference] = []

    opening, closing, period = _statement_balances(session, account, first, last)
    closing_day = period.end if period is not None else None
    differences += _statement_differences(lines, opening, closing, closing_day)

    places = line_places(session, lines)
    totals: dict[str, Decimal] = {place: ZERO for place in PLACES}
    for line in lines:
        for place, amount in places[line.id].items():
            totals[place] += amount
        if places[line.id].get("difference"):
            differences.append(_place_difference(line, places[line.id]))

    booked, receipts, ledger_differences = _ledger_tie(session, lines)
    differences += ledger_differences
    differences += _money_out_ties(session, lines)
    return Reconciliation(
        account=account,
        month=ledger.month_of(first),
        opening_balance=opening,
        closing_balance=closing,
        closing_day=closing_day,
        closing_day_source=period.end_source if period is not None else None,
        lines=len(lines),
        lines_total=sum((line.amount for line in lines), ZERO),
        money_in=sum((line.amount for line in lines if line.amount > 0), ZERO),
        money_out=sum((line.amount for line in lines if line.amount < 0), ZERO),
        places=totals,
        balance_allocations=booked,
        ledger_receipts=receipts,
        ledger_movement=_ledger_movement(session, first, last),
        differences=differences,
    )


def _month_lines(
    session: Session, account: str, first: date, last: date
) -> list[StatementLine]:
    query = (
        select(StatementLine)
        .where(
            StatementLine.account == account,
            StatementLine.booking_date >= first,
            StatementLine.booking_date <= last,
            StatementLine.status != "voided",
        )
        .order_by(StatementLine.booking_date, StatementLine.id)
    )
    return list(session.exec(query).all())


@dataclass(frozen=True)
class _Period:
    """The days of an imported statement, and the source of the last one."""

    batch: ImportBatch
    start: date
    end: date
    end_source: str


def _statement_balances(
    session: Session, account: str, first: date, last: date
) -> tuple[Decimal | None, Decimal | None, _Period | None]:
    """Return the bank's balance at the month's start and its last known one.

    The opening balance is the closing balance of the last statement that
    ended before the month, else the opening balance of the first one that
    starts in it. The closing balance is that of the last statement ending
    in the month, returned with that statement's period.
    """
    periods = _statement_periods(session, account)
    before = [
        p for p in periods if p.end < first and p.batch.closing_balance is not None
    ]
    starting = [p for p in periods if first <= p.start <= last]
    opening = None
    if before:
        latest = max(before, key=lambda p: (p.end, p.batch.id))
        opening = latest.batch.closing_balance
    elif starting:
        earliest = min(starting, key=lambda p: (p.start, p.batch.id))
        opening = earliest.batch.opening_balance
    # NOTE: a statement whose closing balance is dated after the month (on
    # the 1st of the next month, say) gives the month no closing balance,
    # even when all of its lines are in the month.
    ending = [
        p
        for p in periods
        if first <= p.end <= last and p.batch.closing_balance is not None
    ]
    if not ending:
        return opening, None, None
    period = max(ending, key=lambda p: (p.end, p.batch.id))
    return opening, period.batch.closing_balance, period


def _statement_periods(session: Session, account: str) -> list[_Period]:
    """Return the period of each statement of the account with lines and balances.

    A period runs from the statement's first line to the date of its
    closing balance, or to its last line when that is later or the
    statement gives no date.
    """
    batches = session.exec(
        select(ImportBatch).where(
            ImportBatch.account == account, ImportBatch.status != "voided"
        )
    ).all()
    periods = []
    for batch in batches:
        days = session.exec(
            select(StatementLine.booking_date).where(StatementLine.batch_id == batch.id)
        ).all()
        has_balance = (
            batch.opening_balance is not None or batch.closing_balance is not None
        )
        if days and has_balance:
            end, source = _period_end(batch, max(days))
            periods.append(_Period(batch, min(days), end, source))
    return periods


def _period_end(batch: ImportBatch, last_line: date) -> tuple[date, str]:
    # A closing balance includes every line of its statement, so a balance
    # dated before the last line does not end the period early. That
    # happens when a bank gives a line's value date as its only date, or
    # when a time converted to the account's time zone falls on the next day.
    if batch.closing_date is not None and batch.closing_date >= last_line:
        return batch.closing_date, BALANCE_DATE
    return last_line, LAST_LINE


def _statement_differences(
    lines: list[StatementLine],
    opening: Decimal | None,
    closing: Decimal | None,
    closing_day: date | None,
) -> list[Difference]:
    if opening is None or closing is None:
        return [
            Difference(
                "no_statement_balance",
                sum((line.amount for line in lines), ZERO),
                detail="no imported statement gives this month's "
                + ("opening" if opening is None else "closing")
                + " balance; import the bank's statement with balances",
            )
        ]
    covered = [line for line in lines if line.booking_date <= closing_day]
    found = []
    off = opening + sum((line.amount for line in covered), ZERO) - closing
    if off:
        found.append(
            Difference(
                "statement_balance",
                off,
                detail=f"opening {opening} plus the lines to "
                f"{closing_day.isoformat()} is {closing + off}, the bank says "
                f"{closing}",
            )
        )
    # The closing balance covers the lines up to its day, so only lines
    # after that day lack a bank balance.
    later = [line for line in lines if line.booking_date > closing_day]
    if later:
        found.append(
            Difference(
                "after_last_statement",
                sum((line.amount for line in later), ZERO),
                detail=f"the last statement ends on {closing_day.isoformat()}; "
                f"{len(later)} lines after it have no bank balance",
            )
        )
    return found


def _place_difference(line: StatementLine, places: dict[str, Decimal]) -> Difference:
    return Difference(
        "unexplained_money",
        places["difference"],
        line_ref=line.line_ref,
        detail=f"line is {line.status} with {line.amount}; its allocations "
        f"explain {line.amount - places['difference']}",
    )


def _ledger_tie(
    session: Session, lines: list[StatementLine]
) -> tuple[Decimal, Decimal, list[Difference]]:
    """Compare each line's balance allocations with its ledger receipts.

    Allocations from a stored history predate the ledger and are left out.
    """
    ids = [line.id for line in lines]
    allocated: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for allocations in _confirmed_by_line(session, ids).values():
        for a in allocations:
            if a.target == "balance" and a.decision != "history":
                allocated[a.line_id] += a.amount
    receipts: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for start in range(0, len(ids), 500):
        query = select(LedgerEntry.line_id, LedgerEntry.amount).where(
            LedgerEntry.line_id.in_(ids[start : start + 500]),
            LedgerEntry.allocation_id.is_not(None),
            LedgerEntry.kind.in_(("receipt", "reversal")),
        )
        for line_id, amount in session.exec(query).all():
            receipts[line_id] += amount
    differences = [
        Difference(
            "ledger_mismatch",
            allocated[line.id] - receipts[line.id],
            line_ref=line.line_ref,
            detail=f"balance allocations {allocated[line.id]}, ledger receipts "
            f"{receipts[line.id]}",
        )
        for line in lines
        if allocated[line.id] != receipts[line.id]
    ]
    return (
        sum(allocated.values(), ZERO),
        sum(receipts.values(), ZERO),
        differences,
    )


def _money_out_ties(session: Session, lines: list[StatementLine]) -> list[Difference]:
    """Check each money-out line against the refunds and fees it paid.

    A `refund` or `fee` line must equal what the ledger has for it. Any
    other line must have nothing, which catches a paying line that was
    undone after it paid.
    """
    found = []
    for line in lines:
        if line.amount >= 0:
            continue
        refunds = session.exec(
            select(LedgerRequest.amount).where(LedgerRequest.payment_line_id == line.id)
        ).all()
        fees = session.exec(
            select(LedgerEntry.amount).where(
                LedgerEntry.line_id == line.id, LedgerEntry.kind == "fee"
            )
        ).all()
        paid = sum(refunds, ZERO) - sum(fees, ZERO)
        expected = -line.amount if line.status in ("refund", "fee") else ZERO
        if paid == expected:
            continue
        kind = line.status if line.status in ("refund", "fee") else "refund"
        if line.status not in ("refund", "fee") and not refunds:
            kind = "fee"
        found.append(
            Difference(
                f"{kind}_mismatch",
                paid - expected,
                line_ref=line.line_ref,
                detail=f"line of {line.amount} is {line.status}; the ledger has "
                f"{paid} paid by it",
            )
        )
    return found


def _ledger_movement(session: Session, first: date, last: date) -> dict[str, Decimal]:
    query = select(LedgerEntry.kind, LedgerEntry.amount).where(
        LedgerEntry.booked_on >= first, LedgerEntry.booked_on <= last
    )
    movement: dict[str, Decimal] = {kind: ZERO for kind in ledger.KINDS}
    for kind, amount in session.exec(query).all():
        movement[kind] = movement.get(kind, ZERO) + amount
    return movement


RECONCILIATION_COLUMNS = ("section", "item", "amount", "line_ref", "detail")


def reconciliation_rows(report: Reconciliation) -> list[dict]:
    """Return a reconciliation as rows of section, item and amount."""
    rows = [
        _rec_row("bank", "opening_balance", report.opening_balance),
        _rec_row("bank", "lines_total", report.lines_total),
        _rec_row("bank", "money_in", report.money_in),
        _rec_row("bank", "money_out", report.money_out),
        _rec_row(
            "bank",
            "closing_balance",
            report.closing_balance,
            detail=_closing_detail(report),
        ),
    ]
    rows += [
        _rec_row("places", place, amount) for place, amount in report.places.items()
    ]
    rows += [
        _rec_row("ledger", "balance_allocations", report.balance_allocations),
        _rec_row("ledger", "receipts_net", report.ledger_receipts),
    ]
    rows += [
        _rec_row("ledger_movement", kind, amount)
        for kind, amount in report.ledger_movement.items()
    ]
    rows += [
        _rec_row("difference", d.kind, d.amount, line_ref=d.line_ref, detail=d.detail)
        for d in report.differences
    ]
    return rows


def _closing_detail(report: Reconciliation) -> str:
    if report.closing_day is None:
        return ""
    day = report.closing_day.isoformat()
    if report.closing_day_source == BALANCE_DATE:
        return f"closing balance dated {day}"
    return f"statement's last line on {day}"


def _rec_row(section, item, amount, *, line_ref: str = "", detail: str = "") -> dict:
    return {
        "section": section,
        "item": item,
        "amount": amount,
        "line_ref": line_ref,
        "detail": detail,
    }


# Tables for export -------------------------------------------------------------------

CUSTOMER_ANOMALY_COLUMNS = (
    "customer_id",
    "name",
    "kind",
    "amount",
    "age_days",
    "line_refs",
    "detail",
)


@dataclass
class ReportOptions:
    """Options of a report: the day ages are counted to, and its filters."""

    as_of: date
    unused_days: int = 60
    fee_max: Decimal = DEFAULT_FEE_MAX
    account: str | None = None
    month: str | None = None


Table = tuple[tuple[str, ...], list[dict]]


def report_table(session: Session, name: str, options: ReportOptions) -> Table:
    """Return the columns and rows of a named report, for CSV and XLSX."""
    build = REPORT_TABLES.get(name)
    if build is None:
        raise ledger.InvalidLedgerRequest(
            f"report {name!r} is not one of {', '.join(REPORT_NAMES)}"
        )
    return build(session, options)


def _balances_table(session: Session, options: ReportOptions) -> Table:
    return BALANCE_COLUMNS, balance_rows(session, as_of=options.as_of)


def _unmatched_table(session: Session, options: ReportOptions) -> Table:
    rows = unmatched_rows(session, as_of=options.as_of, account=options.account)
    return UNMATCHED_COLUMNS, rows


def _anomalies_table(session: Session, options: ReportOptions) -> Table:
    rows = anomaly_rows(
        session,
        as_of=options.as_of,
        unused_days=options.unused_days,
        fee_max=options.fee_max,
    )
    return ANOMALY_COLUMNS, rows


def _customer_anomalies_table(session: Session, options: ReportOptions) -> Table:
    anomalies = customer_anomalies(
        session,
        as_of=options.as_of,
        unused_days=options.unused_days,
        fee_max=options.fee_max,
    )
    rows = [
        {
            "customer_id": a.customer_id,
            "name": a.name,
            "kind": a.kind,
            "amount": a.amount,
            "age_days": a.age_days,
            "line_refs": "|".join(a.line_refs),
            "detail": a.detail,
        }
        for a in anomalies
    ]
    return CUSTOMER_ANOMALY_COLUMNS, rows


def _reminders_table(session: Session, options: ReportOptions) -> Table:
    rows = reminder_rows(session, as_of=options.as_of, unused_days=options.unused_days)
    return REMINDER_COLUMNS, rows


def _reconciliation_table(session: Session, options: ReportOptions) -> Table:
    if not options.account or not options.month:
        raise ledger.InvalidLedgerRequest(
            "the reconciliation needs an account and a month like 2025-06"
        )
    report = reconciliation(session, account=options.account, month=options.month)
    return RECONCILIATION_COLUMNS, reconciliation_rows(report)


# The reports that are tables, in the order lists and menus show them.
REPORT_TABLES = {
    "balances": _balances_table,
    "unmatched": _unmatched_table,
    "anomalies": _anomalies_table,
    "customer-anomalies": _customer_anomalies_table,
    "reminders": _reminders_table,
    "reconciliation": _reconciliation_table,
}
REPORT_NAMES = tuple(REPORT_TABLES)
# `status` prints counts and can export the allocations, so it is a report
# but not a table of its own.
STATUS_REPORT = "status"
ALL_REPORT_NAMES = (STATUS_REPORT, *REPORT_NAMES)
