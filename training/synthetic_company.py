"""Customers, orders and invoices of a synthetic company, in integer cents."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from pypinyin import lazy_pinyin

from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord
from models.money import from_cents
from training.synthetic_memos import person_name
from training.vocabulary import Vocabulary

ORDER_DAYS = 150
MIN_OPEN, MAX_OPEN = 5, 50


@dataclass
class Customer:
    """A customer with every name and account its payments may carry."""

    customer_id: str
    name: str
    city: str
    brand: str
    industry: str
    suffix: str
    aliases: tuple[str, ...]
    accounts: tuple[str, ...]
    other_accounts: tuple[str, ...]
    representative: str
    representative_account: str
    sister_name: str
    sister_account: str
    pinyin_name: str
    foreign_account: str
    weight: float = 1.0
    order_ids: list[str] = field(default_factory=list)


@dataclass
class Order:
    """An order's synthetic state; `open` moves as lines pay it."""

    order_id: str
    customer_id: str
    order_date: date
    amount: int
    deposit: int | None
    open: int
    export_pool: bool
    touched: bool = False
    invoice_id: str | None = None
    status: str = "open"


@dataclass
class Invoice:
    """An invoice of one or two orders of a customer."""

    invoice_id: str
    order_ids: tuple[str, ...]
    amount: int
    issue_date: date


@dataclass
class Company:
    """Master data of the synthetic company and its order book."""

    words: Vocabulary
    statement_start: date
    customers: list[Customer] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    same_amount_customers: list[str] = field(default_factory=list)
    numbers: OrderNumbers | None = None
    cumulative_weights: list[float] = field(default_factory=list)

    def customer(self, customer_id: str) -> Customer:
        return self.customers[int(customer_id[1:]) - 1]

    def open_orders(self, customer: Customer) -> list[Order]:
        """Return a customer's orders with money open, oldest first."""
        found = [self.orders[oid] for oid in customer.order_ids]
        found = [o for o in found if o.open > 0 and o.status == "open"]
        return sorted(found, key=lambda o: (o.order_date, o.order_id))

    def pick_customer(self, rng: random.Random) -> Customer:
        """Draw a customer, the busier ones more often."""
        point = rng.random() * self.cumulative_weights[-1]
        return self.customers[bisect.bisect_right(self.cumulative_weights, point)]

    def new_order(
        self,
        rng: random.Random,
        customer: Customer,
        *,
        placed: date,
        amount: int | None = None,
        export_pool: bool = False,
    ) -> Order:
        """Create an order of a customer placed on a given day."""
        cents = amount if amount is not None else order_amount(rng)
        order = Order(
            order_id=self.numbers.next(rng, placed),
            customer_id=customer.customer_id,
            order_date=placed,
            amount=cents,
            deposit=_deposit(rng, cents),
            open=cents,
            export_pool=export_pool,
        )
        self.orders[order.order_id] = order
        customer.order_ids.append(order.order_id)
        return order

    def new_invoice(self, orders: list[Order], rng: random.Random) -> Invoice:
        """Invoice orders of one customer together."""
        issued = max(o.order_date for o in orders) + timedelta(days=rng.randint(0, 10))
        invoice = Invoice(
            invoice_id=self.numbers.invoice(issued),
            order_ids=tuple(o.order_id for o in orders),
            amount=sum(o.amount for o in orders),
            issue_date=issued,
        )
        self.invoices[invoice.invoice_id] = invoice
        for order in orders:
            order.invoice_id = invoice.invoice_id
        return invoice

    def close_history(self, rng: random.Random, *, target_open: int) -> None:
        """Keep exactly `target_open` open orders at the export where possible.

        Orders placed during the history and left open add to the export.
        To make up for them, untouched export orders are dropped from
        customers that keep more than the minimum.
        """
        open_orders = [
            o for o in self.orders.values() if o.open > 0 and o.status == "open"
        ]
        extra = len(open_orders) - target_open
        droppable = [
            o
            for o in open_orders
            if o.export_pool and not o.touched and o.invoice_id is None
        ]
        rng.shuffle(droppable)
        for order in droppable:
            if extra <= 0:
                break
            customer = self.customer(order.customer_id)
            if len(self.open_orders(customer)) <= MIN_OPEN:
                continue
            if self._has_equal_sibling(customer, order):
                continue
            del self.orders[order.order_id]
            customer.order_ids.remove(order.order_id)
            extra -= 1

    def _has_equal_sibling(self, customer: Customer, order: Order) -> bool:
        return any(
            o.open == order.open and o.order_id != order.order_id
            for o in self.open_orders(customer)
        )

    def customer_records(self) -> list[CustomerRecord]:
        return [
            CustomerRecord(
                customer_id=c.customer_id,
                name=c.name,
                aliases=c.aliases,
                bank_accounts=c.accounts,
            )
            for c in self.customers
        ]

    def order_records(self) -> list[OrderRecord]:
        ordered = sorted(self.orders.values(), key=lambda o: (o.order_date, o.order_id))
        return [_order_record(order) for order in ordered]

    def invoice_records(self) -> list[InvoiceRecord]:
        return [
            InvoiceRecord(
                invoice_id=i.invoice_id,
                order_ids=i.order_ids,
                amount=from_cents(i.amount),
                issue_date=i.issue_date,
            )
            for i in self.invoices.values()
        ]


def _order_record(order: Order) -> OrderRecord:
    if order.status != "open":
        status = order.status
    elif order.open == 0:
        status = "paid"
    elif order.open < order.amount:
        status = "partly_paid"
    else:
        status = "open"
    return OrderRecord(
        order_id=order.order_id,
        customer_id=order.customer_id,
        order_date=order.order_date,
        amount=from_cents(order.amount),
        open_amount=from_cents(order.open if order.status == "open" else order.amount),
        currency="CNY",
        deposit_amount=None if order.deposit is None else from_cents(order.deposit),
        status=status,
    )


class OrderNumbers:
    """Unique order and invoice numbers in three order-number styles.

    XS2410-0031 and 24100031 share one counter per month, so no two orders
    have the same digits whatever their style.
    """

    def __init__(self, width: int):
        self.width = width
        self.monthly: dict[str, itertools.count] = {}
        self.so = itertools.count(4101)
        self.invoices = itertools.count(1)

    def next(self, rng: random.Random, placed: date) -> str:
        month = placed.strftime("%y%m")
        style = rng.random()
        if style < 0.3:
            return f"SO-{next(self.so)}"
        counter = self.monthly.setdefault(month, itertools.count(1))
        sequence = f"{next(counter):0{self.width}d}"
        if style < 0.8:
            return f"XS{month}-{sequence}"
        return f"{month}{sequence}"

    def invoice(self, issued: date) -> str:
        """Return a 20-digit electronic invoice number."""
        return f"{issued:%y}3{issued.month:02d}20{next(self.invoices):013d}"


def order_amount(rng: random.Random) -> int:
    """Draw an order amount in cents: mostly whole yuan, a few with cents."""
    yuan = math.exp(rng.gauss(math.log(18_000), 1.0))
    yuan = min(max(yuan, 300.0), 3_000_000.0)
    style = rng.random()
    if style < 0.45:
        return int(round(yuan, -2)) * 100 or 10_000
    if style < 0.8:
        return int(yuan) * 100
    return int(yuan * 100)


def _deposit(rng: random.Random, cents: int) -> int | None:
    if rng.random() >= 0.3:
        return None
    style = rng.random()
    if style < 0.5:
        return cents * 3 // 10
    if style < 0.75:
        return cents // 2
    rounded = (cents // 5 // 100_000) * 100_000
    return rounded if 0 < rounded < cents else cents * 3 // 10


def build_company(
    rng: random.Random,
    words: Vocabulary,
    *,
    customers: int,
    open_orders: int,
    statement_start: date,
) -> Company:
    """Create the customers and the orders open at the export."""
    company = Company(words=words, statement_start=statement_start)
    per_month = open_orders * 3 // (ORDER_DAYS // 30) + 1000
    company.numbers = OrderNumbers(width=max(4, len(str(per_month))))
    names = _NameMaker(rng, words)
    counts = _open_counts(rng, customers, open_orders)
    for number, count in enumerate(counts, start=1):
        customer = names.customer(f"C{number:05d}")
        customer.weight = count * math.exp(rng.gauss(0, 0.5))
        company.customers.append(customer)
        _export_orders(rng, company, customer, count)
    company.cumulative_weights = list(
        itertools.accumulate(c.weight for c in company.customers)
    )
    return company


def _open_counts(rng: random.Random, customers: int, total: int) -> list[int]:
    """Spread `total` open orders over customers, 5 to 50 each."""
    counts = [
        min(MAX_OPEN, MIN_OPEN + int(rng.betavariate(1.3, 3.0) * 46))
        for _ in range(customers)
    ]
    step = 1 if sum(counts) < total else -1
    while sum(counts) != total:
        i = rng.randrange(customers)
        if MIN_OPEN <= counts[i] + step <= MAX_OPEN:
            counts[i] += step
    return counts


def _export_orders(rng, company: Company, customer: Customer, count: int) -> None:
    start = company.statement_start
    equal_group = 0
    if count >= 6 and rng.random() < 0.3:
        equal_group = rng.randint(2, 4)
        company.same_amount_customers.append(customer.customer_id)
    shared_amount = order_amount(rng)
    created = []
    for i in range(count):
        placed = start - timedelta(days=rng.randint(1, ORDER_DAYS))
        amount = shared_amount if i < equal_group else None
        created.append(
            company.new_order(
                rng, customer, placed=placed, amount=amount, export_pool=True
            )
        )
    _invoice_some(rng, company, created)
    if rng.random() < 0.05:
        order = company.new_order(
            rng, customer, placed=start - timedelta(days=rng.randint(1, ORDER_DAYS))
        )
        order.status = rng.choice(["cancelled", "Cancelled", "closed"])


def _invoice_some(rng, company: Company, orders: list[Order]) -> None:
    pending = [o for o in orders if rng.random() < 0.25]
    while pending:
        take = 2 if len(pending) >= 2 and rng.random() < 0.15 else 1
        company.new_invoice(pending[:take], rng)
        pending = pending[take:]


class _NameMaker:
    """Company and person names, unique within one company's customers."""

    def __init__(self, rng: random.Random, words: Vocabulary):
        self.rng = rng
        self.words = words
        self.used: set[str] = set()
        self.accounts: set[str] = set()
        chars = sorted(words.homophones)
        self.brands = [a + b for a in chars for b in chars if a != b]

    def customer(self, customer_id: str) -> Customer:
        rng = self.rng
        city, brand, industry, suffix, name = self._unique_name()
        aliases = self._aliases(brand, industry)
        return Customer(
            customer_id=customer_id,
            name=name,
            city=city,
            brand=brand,
            industry=industry,
            suffix=suffix,
            aliases=aliases,
            accounts=tuple(self.account() for _ in range(rng.choice((1, 1, 2)))),
            other_accounts=tuple(self.account() for _ in range(rng.choice((0, 1, 2)))),
            representative=person_name(rng),
            representative_account=self.account(personal=True),
            sister_name=self._sister(city, brand, industry),
            sister_account=self.account(),
            pinyin_name=self._pinyin(city, brand, industry),
            foreign_account="OSA" + self._digits(12),
        )

    def _unique_name(self):
        rng, words = self.rng, self.words
        for _ in range(1000):
            city = rng.choice(words.cities)
            brand = rng.choice(self.brands)
            industry = rng.choice(words.industries)
            suffix = rng.choice(words.suffixes)
            if rng.random() < 0.15:
                name = f"{brand}{industry}（{city}）{suffix}"
            else:
                name = f"{city}{brand}{industry}{suffix}"
            if name not in self.used:
                self.used.add(name)
                return city, brand, industry, suffix, name
        raise ValueError(
            "ran out of distinct company names; use fewer customers per vocabulary"
        )

    def _aliases(self, brand: str, industry: str) -> tuple[str, ...]:
        roll = self.rng.random()
        if roll < 0.4:
            return ()
        if roll < 0.8:
            return (brand + industry,)
        return (brand + industry, brand + industry[:2])

    def _sister(self, city: str, brand: str, industry: str) -> str:
        others = [word for word in self.words.industries if word != industry]
        return f"{city}{brand}{self.rng.choice(others)}有限公司"

    def _pinyin(self, city: str, brand: str, industry: str) -> str:
        parts = ["".join(lazy_pinyin(brand)).upper()]
        syllables = [s.upper() for s in lazy_pinyin(industry)]
        parts += ["".join(syllables[i : i + 2]) for i in range(0, len(syllables), 2)]
        if self.rng.random() < 0.5:
            parts.insert(0, "".join(lazy_pinyin(city)).upper())
        ending = self.rng.choice(("CO., LTD.", "CO LTD", "COMPANY LIMITED", "CO.,LTD"))
        return " ".join(parts) + " " + ending

    def account(self, *, personal: bool = False) -> str:
        while True:
            if personal:
                number = "6222" + self._digits(15)
            else:
                number = self._digits(self.rng.choice((15, 17, 19)))
            if number not in self.accounts:
                self.accounts.add(number)
                return number

    def _digits(self, count: int) -> str:
        first = str(self.rng.randint(1, 9))
        return first + "".join(str(self.rng.randint(0, 9)) for _ in range(count - 1))
