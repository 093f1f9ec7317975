"""The in-memory picture the matcher blocks against.

`MatchIndex` holds customers, open orders and what earlier payments taught
(payer accounts and names per customer). It changes as lines are allocated,
so a later line of the same batch sees the open amounts the earlier ones
left. All amounts inside are integer cents.
"""

from __future__ import annotations

from bisect import insort
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from rapidfuzz import fuzz

from features.references import ReferenceIndex
from features.text import (
    core_name,
    has_latin,
    latin_key,
    normalize_account,
    normalize_name,
    pinyin_key,
)
from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord
from models.money import to_cents

OPEN_STATUSES = {"open", "partly_paid"}


@dataclass(frozen=True)
class MatchSettings:
    """Tolerances and limits of candidate generation and decisions."""

    fee_max: Decimal = Decimal("50.00")
    fee_rate: Decimal = Decimal("0.01")
    deposit_shares: tuple[Decimal, ...] = (Decimal("0.3"), Decimal("0.5"))
    max_customers: int = 4
    max_combination: int = 4
    target_precision: float = 0.995
    margin: float = 0.15

    def fee_tolerance_cents(self, open_cents: int) -> int:
        """Return the largest shortfall booked as a bank fee on an order."""
        by_rate = int(Decimal(open_cents) * self.fee_rate)
        return min(to_cents(self.fee_max), by_rate)


@dataclass
class OpenOrder:
    """An order's matching state, in cents."""

    order_id: str
    customer_id: str
    order_date: date
    amount: int
    open: int
    deposit: int | None
    currency: str


@dataclass
class NameMatch:
    """How well a payer name fits a customer, on a 0-100 scale."""

    customer_id: str
    score: float
    exact: bool = False
    alias: bool = False
    pinyin: bool = False


@dataclass
class MatchIndex:
    """Customers, open orders and learned payer habits, for blocking."""

    settings: MatchSettings = field(default_factory=MatchSettings)
    customers: dict[str, CustomerRecord] = field(default_factory=dict)
    orders: dict[str, OpenOrder] = field(default_factory=dict)
    invoices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    references: ReferenceIndex = field(default_factory=ReferenceIndex)
    open_by_customer: dict[str, list[str]] = field(
        default_factory=lambda: defaultdict(list)
    )
    amount_index: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    exact_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    alias_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    core_names: dict[str, str] = field(default_factory=dict)
    pinyin_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    latin_names: dict[str, str] = field(default_factory=dict)
    bigrams: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    master_accounts: dict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    seen_accounts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    seen_names: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    payments: Counter = field(default_factory=Counter)
    advances: Counter = field(default_factory=Counter)

    @classmethod
    def build(
        cls,
        customers: Iterable[CustomerRecord],
        orders: Iterable[OrderRecord],
        invoices: Iterable[InvoiceRecord] = (),
        *,
        settings: MatchSettings | None = None,
    ) -> "MatchIndex":
        """Index customers, their open orders and the invoices of them."""
        index = cls(settings=settings or MatchSettings())
        for customer in customers:
            index.add_customer(customer)
        for order in orders:
            index.add_order(order)
        for invoice in invoices:
            index.add_invoice(invoice)
        index.sort_open_orders()
        return index

    def add_customer(self, customer: CustomerRecord) -> None:
        """Index a customer's names, aliases and accounts."""
        cid = customer.customer_id
        self.customers[cid] = customer
        self.exact_names[normalize_name(customer.name)].add(cid)
        core = core_name(customer.name)
        self.core_names[cid] = core
        self.exact_names[core].add(cid)
        self.pinyin_names[pinyin_key(customer.name)].add(cid)
        self.latin_names[cid] = pinyin_key(customer.name)
        for gram in _bigrams(core):
            self.bigrams[gram].add(cid)
        for alias in customer.aliases:
            self.alias_names[normalize_name(alias)].add(cid)
            self.alias_names[core_name(alias)].add(cid)
            for gram in _bigrams(core_name(alias)):
                self.bigrams[gram].add(cid)
        for account in customer.bank_accounts:
            self.master_accounts[normalize_account(account)].add(cid)

    def add_order(self, order: OrderRecord) -> None:
        """Index an order; only open and partly paid ones are candidates."""
        if order.status.lower() not in OPEN_STATUSES or order.open_amount <= 0:
            return
        deposit = None
        if order.deposit_amount is not None and order.deposit_amount > 0:
            deposit = to_cents(order.deposit_amount)
        state = OpenOrder(
            order_id=order.order_id,
            customer_id=order.customer_id,
            order_date=order.order_date,
            amount=to_cents(order.amount),
            open=to_cents(order.open_amount),
            deposit=deposit,
            currency=order.currency,
        )
        if order.order_id in self.orders:
            self.remove_order(order.order_id)
        self.orders[order.order_id] = state
        # Insert in date order, so each customer's list stays oldest first.
        insort(
            self.open_by_customer[order.customer_id],
            order.order_id,
            key=lambda oid: (self.orders[oid].order_date, oid),
        )
        self.amount_index[state.open].add(order.order_id)
        self.references.add(order.order_id, "order:" + order.order_id)

    def remove_order(self, order_id: str) -> None:
        """Drop an order from blocking; its number stays a known reference."""
        state = self.orders.pop(order_id, None)
        if state is None:
            return
        self.amount_index[state.open].discard(order_id)
        self.open_by_customer[state.customer_id].remove(order_id)

    def reset_open(self, orders: Iterable[OrderRecord]) -> None:
        """Take the open amounts and statuses of an ERP export as the truth.

        Orders that the export no longer shows as open leave blocking;
        orders that are new or open again join it.
        """
        for order in orders:
            is_open = order.status.lower() in OPEN_STATUSES and order.open_amount > 0
            state = self.orders.get(order.order_id)
            if not is_open:
                self.remove_order(order.order_id)
            elif state is None or state.customer_id != order.customer_id:
                self.add_order(order)
            else:
                self.set_open(order.order_id, to_cents(order.open_amount))

    def add_invoice(self, invoice: InvoiceRecord) -> None:
        """Index an invoice number as a pointer to its orders."""
        self.invoices[invoice.invoice_id] = tuple(invoice.order_ids)
        self.references.add(invoice.invoice_id, "invoice:" + invoice.invoice_id)

    def sort_open_orders(self) -> None:
        """Keep each customer's open orders oldest first."""
        for order_ids in self.open_by_customer.values():
            order_ids.sort(key=lambda oid: (self.orders[oid].order_date, oid))

    def open_orders(self, customer_id: str) -> list[OpenOrder]:
        """Return a customer's orders with money still open, oldest first."""
        return [
            self.orders[oid]
            for oid in self.open_by_customer.get(customer_id, ())
            if self.orders[oid].open > 0
        ]

    def reduce_open(self, order_id: str, cents: int) -> None:
        """Take an allocation off an order's open amount."""
        order = self.orders.get(order_id)
        if order is None:
            return
        self.set_open(order_id, max(0, order.open - cents))

    def set_open(self, order_id: str, cents: int) -> None:
        """Set an order's open amount, keeping the amount index in step."""
        order = self.orders[order_id]
        self.amount_index[order.open].discard(order_id)
        order.open = cents
        if order.open > 0:
            self.amount_index[order.open].add(order_id)

    def learn_payer(self, *, customer_id: str, name: str, account: str) -> None:
        """Remember that this payer name and account paid for a customer."""
        if account:
            self.seen_accounts[normalize_account(account)][customer_id] += 1
        if name:
            self.seen_names[normalize_name(name)][customer_id] += 1
        self.payments[customer_id] += 1

    def customers_by_account(self, account: str) -> dict[str, int]:
        """Return customers known to pay from an account, with counts.

        A master-data account counts as one payment more than its history.
        """
        key = normalize_account(account)
        if not key:
            return {}
        found = dict(self.seen_accounts.get(key, {}))
        for cid in self.master_accounts.get(key, ()):
            found[cid] = found.get(cid, 0) + 1
        return found

    def customers_by_name(self, name: str, *, limit: int = 5) -> list[NameMatch]:
        """Return the customers a payer name may stand for, best first."""
        if not name.strip():
            return []
        full = normalize_name(name)
        core = core_name(name)
        matches: dict[str, NameMatch] = {}

        def keep(match: NameMatch) -> None:
            known = matches.get(match.customer_id)
            if known is None or match.score > known.score:
                matches[match.customer_id] = match

        for cid in self.exact_names.get(full, set()) | self.exact_names.get(core, set()):
            keep(NameMatch(cid, 100.0, exact=True))
        for cid in self.alias_names.get(full, set()) | self.alias_names.get(core, set()):
            keep(NameMatch(cid, 98.0, alias=True))
        for cid, count in self.seen_names.get(full, {}).items():
            keep(NameMatch(cid, 97.0, alias=True))
        if has_latin(name):
            self._match_latin(latin_key(name), keep)
        else:
            for cid in self.pinyin_names.get(pinyin_key(name), ()):
                keep(NameMatch(cid, 95.0, pinyin=True))
            self._match_fuzzy(core, keep)
        ranked = sorted(matches.values(), key=lambda m: (-m.score, m.customer_id))
        return ranked[:limit]

    def _match_fuzzy(self, core: str, keep) -> None:
        shared: Counter = Counter()
        for gram in _bigrams(core):
            for cid in self.bigrams.get(gram, ()):
                shared[cid] += 1
        # Sorted on the id too, so ties at the cut do not depend on set order.
        nearest = sorted(shared.items(), key=lambda item: (-item[1], item[0]))
        for cid, _ in nearest[:30]:
            score = fuzz.ratio(core, self.core_names[cid])
            partial = fuzz.partial_ratio(core, self.core_names[cid])
            # A short name inside the full one (恒达机械 in 恒达机械设备) counts.
            blended = max(score, partial * 0.95 if len(core) >= 3 else 0)
            if blended >= 60:
                keep(NameMatch(cid, float(blended)))

    def _match_latin(self, key: str, keep) -> None:
        if len(key) < 4:
            return
        for cid, pinyin in self.latin_names.items():
            if not pinyin or pinyin[0] != key[0]:
                continue
            score = fuzz.ratio(key, pinyin)
            if key.startswith(pinyin) or pinyin.startswith(key):
                score = max(score, 92.0)
            if score >= 75:
                keep(NameMatch(cid, float(score), pinyin=True))


def _bigrams(text: str) -> set[str]:
    if len(text) < 2:
        return {text} if text else set()
    return {text[i : i + 2] for i in range(len(text) - 1)}
