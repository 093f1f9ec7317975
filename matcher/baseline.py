"""The rule-based baseline matcher that benchmarks compare against.

It finds the customer by a known bank account (from the master data or a
confirmed past payment), else by the exact master name. Then it books the
orders of that customer whose numbers the memo writes as-is. Without such a
number it books the customer's one open order whose open amount equals the
payment, and otherwise the customer's prepayment balance. It decides `auto`
when referenced orders are paid exactly or the one equal order is found,
`review` when only the customer is known, and `unmatched` otherwise. It
flags no anomalies.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from features.text import fold_width, normalize_account, normalize_name
from matcher.index import OPEN_STATUSES
from models.money import from_cents, to_cents

# The baseline has no calibrated confidence; these stand in for one.
CONFIDENCE = {"auto": 1.0, "review": 0.5, "unmatched": 0.0}


@dataclass
class _Order:
    order_id: str
    order_date: object
    open: int


@dataclass
class _Book:
    """The baseline's view: accounts, names and open amounts per customer."""

    accounts: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    orders: dict[str, list[_Order]] = field(default_factory=lambda: defaultdict(list))


def baseline_match(data) -> list[dict]:
    """Match a case's statement lines by the baseline rules.

    Returns allocation rows in the shape of `LineResult.rows()`, lines in
    input order. Lines are booked in booking-date order, so a later line
    is matched against the open amounts that earlier ones left.
    """
    book = _build(data)
    lines = data.statement_lines
    order = sorted(range(len(lines)), key=lambda i: (lines[i].booking_date, i))
    rows_by_line: dict[int, list[dict]] = {}
    for i in order:
        rows_by_line[i] = _match_line(book, lines[i])
    return [row for i in range(len(lines)) for row in rows_by_line[i]]


def _build(data) -> _Book:
    book = _Book()
    for customer in data.customers:
        for account in customer.bank_accounts:
            book.accounts.setdefault(normalize_account(account), customer.customer_id)
        book.names.setdefault(normalize_name(customer.name), customer.customer_id)
    _learn_history_accounts(book, data)
    for order in data.orders:
        if order.status.lower() in OPEN_STATUSES and order.open_amount > 0:
            book.orders[order.customer_id].append(
                _Order(order.order_id, order.order_date, to_cents(order.open_amount))
            )
    for orders in book.orders.values():
        orders.sort(key=lambda o: (o.order_date, o.order_id))
    return book


def _learn_history_accounts(book: _Book, data) -> None:
    customers: dict[str, str] = {}
    for row in data.history_allocations:
        if row.customer_id:
            customers[row.line_ref] = row.customer_id
    for line in data.history_lines:
        account = normalize_account(line.counterparty_account)
        if account and line.line_ref in customers:
            book.accounts.setdefault(account, customers[line.line_ref])


def _match_line(book: _Book, line) -> list[dict]:
    customer_id = _find_customer(book, line)
    cents = to_cents(line.amount)
    if customer_id is None or cents <= 0:
        return [_row(line, "unmatched", "", "", "none", line.amount)]

    open_orders = [o for o in book.orders.get(customer_id, ()) if o.open > 0]
    referenced = _referenced(open_orders, line.memo)
    if referenced:
        exact = sum(o.open for o in referenced) == cents
        return _book_orders(line, customer_id, referenced, cents, exact)

    equal = [o for o in open_orders if o.open == cents]
    if len(equal) == 1:
        return _book_orders(line, customer_id, equal, cents, True)
    return [_row(line, "review", customer_id, "", "balance", line.amount)]


def _find_customer(book: _Book, line) -> str | None:
    account = normalize_account(line.counterparty_account)
    if account and account in book.accounts:
        return book.accounts[account]
    return book.names.get(normalize_name(line.counterparty_name))


def _referenced(orders: list[_Order], memo: str) -> list[_Order]:
    folded = fold_width(memo).upper()
    found = []
    for order in orders:
        number = order.order_id.upper()
        if number not in folded:
            continue
        bounded = rf"(?<![A-Z0-9]){re.escape(number)}(?![A-Z0-9])"
        if re.search(bounded, folded):
            found.append(order)
    return found


def _book_orders(line, customer_id, orders, cents: int, exact: bool) -> list[dict]:
    decision = "auto" if exact else "review"
    rows = []
    left = cents
    for order in orders:
        take = min(order.open, left)
        if take <= 0:
            break
        order.open -= take
        left -= take
        rows.append(
            _row(line, decision, customer_id, order.order_id, "order", from_cents(take))
        )
    if left > 0:
        rows.append(_row(line, decision, customer_id, "", "balance", from_cents(left)))
    return rows


def _row(line, decision, customer_id, order_id, target, amount) -> dict:
    return {
        "line_ref": line.line_ref,
        "customer_id": customer_id,
        "order_id": order_id,
        "target": target,
        "amount": amount,
        "confidence": CONFIDENCE[decision],
        "decision": decision,
        "anomaly_score": 0.0,
        "anomaly_reasons": "",
    }
