"""The in-memory picture the matcher blocks against.

`MatchIndex` contains customers, open orders and what earlier payments taught
(payer accounts and names per customer, usual amounts, the words of memos).
It changes as lines are allocated, so a later line of the same batch sees
the open amounts the earlier ones left. All amounts inside are integer
cents.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from itertools import islice

from rapidfuzz import fuzz, process

from features.references import ReferenceIndex
from features.text import (
    Tokenizer,
    core_name,
    han_text,
    has_latin,
    jieba_tokens,
    latin_key,
    memo_tokens,
    normalize_account,
    normalize_name,
    pinyin_key,
)
from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord
from models.money import to_cents

OPEN_STATUSES = {"open", "partly_paid"}

# Allocation shapes, for learning which memo words go with which: no
# customer, the balance only, whole orders, part of an order, or whole
# orders plus the balance.
SHAPES = ("none", "balance", "order", "part", "overpay")

# A name gram shared by more customers than this is weak evidence of the
# payer (机械, 科技), and walking its list would make the cost per line grow
# with the number of customers.
MAX_POSTINGS = 400
NAME_SHORTLIST = 30
DUPLICATE_WINDOW = timedelta(days=15)
KEPT_AMOUNTS = 50


@dataclass(frozen=True)
class MatchSettings:
    """Tolerances and limits of candidate generation and decisions.

    `margin` is a difference of ranker scores, which are log-odds: a
    runner-up that books the money differently and scores within `margin`
    of the top candidate blocks an automatic decision.
    """

    fee_max: Decimal = Decimal("50.00")
    fee_rate: Decimal = Decimal("0.01")
    deposit_shares: tuple[Decimal, ...] = (Decimal("0.3"), Decimal("0.5"))
    max_customers: int = 4
    max_combination: int = 4
    max_candidates: int = 32
    target_precision: float = 0.995
    margin: float = 1.0
    unused_balance_days: int = 60
    unusual_factor: float = 20.0

    def fee_tolerance_cents(self, open_cents: int) -> int:
        """Return the largest shortfall booked as a bank fee on an order."""
        numerator, denominator = self.fee_rate_ratio
        return min(self.fee_max_cents, open_cents * numerator // denominator)

    @cached_property
    def fee_rate_ratio(self) -> tuple[int, int]:
        """Return the fee rate as a fraction of whole numbers, for exact sums."""
        return Decimal(self.fee_rate).as_integer_ratio()

    @cached_property
    def fee_max_cents(self) -> int:
        """Return the largest bank fee in cents."""
        return to_cents(self.fee_max)

    @cached_property
    def deposit_percents(self) -> tuple[str, ...]:
        """Return the deposit shares as percentages for reasons: 30, 50."""
        return tuple(
            f"{share * 100:f}".rstrip("0").rstrip(".") for share in self.deposit_shares
        )

    def deposit_cents(self, amount_cents: int) -> tuple[int, ...]:
        """Return each usual deposit share of an order amount, in whole cents."""
        ratios = [Decimal(share).as_integer_ratio() for share in self.deposit_shares]
        return tuple(amount_cents * top // bottom for top, bottom in ratios)


@dataclass(slots=True, eq=False)
class OpenOrder:
    """An order's matching state, in cents.

    Compared by identity, because an index keeps one state per order.
    """

    order_id: str
    customer_id: str
    order_date: date
    amount: int
    open: int
    deposit: int | None
    currency: str
    # The usual deposit shares of the amount (MatchSettings.deposit_shares).
    shares: tuple[int, ...] = ()


@dataclass
class NameMatch:
    """The fit of a payer name to a customer, on a 0-100 scale."""

    customer_id: str
    score: float
    exact: bool = False
    alias: bool = False
    pinyin: bool = False


class GramIndex:
    """Customers by the character n-grams of their names.

    Lookups skip grams shared by more than MAX_POSTINGS customers, so the
    shortlist of a name costs about the same for 300 or 30,000 customers.
    """

    def __init__(self, size: int):
        self.size = size
        self.postings: dict[str, list[str]] = defaultdict(list)

    def grams(self, text: str) -> set[str]:
        if len(text) < self.size:
            return {text} if text else set()
        return {text[i : i + self.size] for i in range(len(text) - self.size + 1)}

    def add(self, text: str, customer_id: str) -> None:
        for gram in self.grams(text):
            posting = self.postings[gram]
            if not posting or posting[-1] != customer_id:
                posting.append(customer_id)

    def shortlist(self, text: str, *, limit: int = NAME_SHORTLIST) -> list[str]:
        """Return the customers sharing the most informative grams with `text`."""
        shared: Counter = Counter()
        for gram in self.grams(text):
            posting = self.postings.get(gram)
            if posting and len(posting) <= MAX_POSTINGS:
                shared.update(posting)
        # Sorted on the id too, so ties at the cut do not depend on set order.
        nearest = sorted(shared.items(), key=lambda item: (-item[1], item[0]))
        return [cid for cid, _ in nearest[:limit]]


class MemoStats:
    """Counts of each memo word per allocation shape.

    Learned from confirmed allocations, so words of any vocabulary count
    once a few payments have used them.
    """

    def __init__(self, tokenizer: Tokenizer = jieba_tokens) -> None:
        self.tokenizer = tokenizer
        self.words: dict[str, Counter] = defaultdict(Counter)
        self.shapes: Counter = Counter()
        # Log-odds per memo text, valid until the next `learn`.
        self._odds: dict[str, dict[str, float]] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_odds"] = {}
        return state

    def learn(self, memo: str, shape: str) -> None:
        if shape not in SHAPES:
            raise ValueError(
                f"unknown allocation shape {shape!r}: use one of {', '.join(SHAPES)}"
            )
        self.shapes[shape] += 1
        for token in memo_tokens(memo, self.tokenizer):
            self.words[token][shape] += 1
        self._odds.clear()

    def log_odds(self, memo: str) -> dict[str, float]:
        """Return, per shape, how much the memo's words raise its log-odds.

        Naive Bayes over the memo's known words, each smoothed towards the
        overall share of the shape, and clipped to [-6, 6]. Unknown words
        and an empty history add nothing.
        """
        key = han_text(memo)
        known = self._odds.get(key)
        if known is None:
            known = self._odds[key] = self._log_odds(memo)
        return known

    def _log_odds(self, memo: str) -> dict[str, float]:
        total = sum(self.shapes.values())
        if not total:
            return {}
        evidence = dict.fromkeys(SHAPES, 0.0)
        for token in memo_tokens(memo, self.tokenizer):
            counts = self.words.get(token)
            if not counts:
                continue
            seen = sum(counts.values())
            for shape in SHAPES:
                prior = (self.shapes[shape] + 1) / (total + len(SHAPES))
                rate = (counts[shape] + 2.0 * prior) / (seen + 2.0)
                evidence[shape] += math.log(rate / prior)
        return {shape: max(-6.0, min(6.0, value)) for shape, value in evidence.items()}


class RecentCredits:
    """Recent money in by payer, amount and memo, to spot repeated payments."""

    def __init__(self) -> None:
        self.seen: dict[tuple, list[date]] = defaultdict(list)

    @staticmethod
    def key(line) -> tuple:
        payer = normalize_account(line.counterparty_account) or normalize_name(
            line.counterparty_name
        )
        return (payer, line.amount, line.memo.strip())

    def is_repeat(self, line) -> bool:
        """Tell whether an equal credit from this payer came shortly before."""
        if line.amount <= 0:
            return False
        for earlier in self.seen.get(self.key(line), ()):
            if timedelta(0) <= line.booking_date - earlier <= DUPLICATE_WINDOW:
                return True
        return False

    def add(self, line) -> None:
        if line.amount > 0:
            self.seen[self.key(line)].append(line.booking_date)


@dataclass
class MatchIndex:
    """Customers, open orders and learned payer habits, for blocking."""

    settings: MatchSettings = field(default_factory=MatchSettings)
    customers: dict[str, CustomerRecord] = field(default_factory=dict)
    orders: dict[str, OpenOrder] = field(default_factory=dict)
    invoices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    references: ReferenceIndex = field(default_factory=ReferenceIndex)
    # Each customer's indexed orders, oldest first, paid ones included until
    # they leave blocking.
    open_by_customer: dict[str, list[OpenOrder]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Open amount -> ids of orders open for exactly that much, oldest added
    # first; a dict keeps the order and removes in constant time.
    amount_index: dict[int, dict[str, None]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    exact_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    core_index: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    alias_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    core_names: dict[str, str] = field(default_factory=dict)
    pinyin_names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    latin_names: dict[str, str] = field(default_factory=dict)
    han_grams: GramIndex = field(default_factory=lambda: GramIndex(2))
    latin_grams: GramIndex = field(default_factory=lambda: GramIndex(3))
    master_accounts: dict[str, set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    seen_accounts: dict[str, Counter] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    seen_names: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    payments: Counter = field(default_factory=Counter)
    advances: Counter = field(default_factory=Counter)
    # Log10 of the latest confirmed amounts per customer, for usual amounts.
    amounts: dict[str, deque] = field(default_factory=dict)
    # Prepayment balance in cents per customer, from the bookings this index
    # has seen, and the day it last became positive.
    balances: Counter = field(default_factory=Counter)
    balance_since: dict[str, date] = field(default_factory=dict)
    memo_stats: MemoStats = field(default_factory=MemoStats)
    recent: RecentCredits = field(default_factory=RecentCredits)
    # Bumped whenever a customer's open orders change; caches key on it.
    versions: Counter = field(default_factory=Counter)
    # Payer name -> its matches; cleared when a name is learned for a new
    # customer, the only change that alters a result.
    name_cache: dict = field(default_factory=dict, repr=False, compare=False)
    combination_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # Caches are rebuilt on demand, so copies and pickles leave them out.
        state = dict(self.__dict__)
        state["name_cache"] = {}
        state["combination_cache"] = {}
        return state

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
            index.add_order(order, keep_sorted=False)
        for invoice in invoices:
            index.add_invoice(invoice)
        index.sort_open_orders()
        return index

    def add_customer(self, customer: CustomerRecord) -> None:
        """Index a customer's names, aliases and accounts."""
        cid = customer.customer_id
        self.customers[cid] = customer
        self.name_cache.clear()
        self.exact_names[normalize_name(customer.name)].add(cid)
        core = core_name(customer.name)
        self.core_names[cid] = core
        self.core_index[core].add(cid)
        pinyin = pinyin_key(customer.name)
        self.pinyin_names[pinyin].add(cid)
        self.latin_names[cid] = pinyin
        self.latin_grams.add(pinyin, cid)
        self.han_grams.add(core, cid)
        for alias in customer.aliases:
            self.alias_names[normalize_name(alias)].add(cid)
            self.alias_names[core_name(alias)].add(cid)
            self.han_grams.add(core_name(alias), cid)
        for account in customer.bank_accounts:
            self.master_accounts[normalize_account(account)].add(cid)

    def add_order(self, order: OrderRecord, *, keep_sorted: bool = True) -> None:
        """Index an order; only open and partly paid ones are candidates."""
        if order.status.lower() not in OPEN_STATUSES or order.open_amount <= 0:
            return
        deposit = None
        if order.deposit_amount is not None and order.deposit_amount > 0:
            deposit = to_cents(order.deposit_amount)
        amount = to_cents(order.amount)
        state = OpenOrder(
            order_id=order.order_id,
            customer_id=order.customer_id,
            order_date=order.order_date,
            amount=amount,
            open=to_cents(order.open_amount),
            deposit=deposit,
            currency=order.currency,
            shares=self.settings.deposit_cents(amount),
        )
        if order.order_id in self.orders:
            self.remove_order(order.order_id)
        self.orders[order.order_id] = state
        customer_orders = self.open_by_customer[order.customer_id]
        if keep_sorted:
            # Insert in date order, so each customer's list stays oldest first.
            insort(customer_orders, state, key=_date_key)
        else:
            customer_orders.append(state)
        self.amount_index[state.open][order.order_id] = None
        self.references.add(order.order_id, "order:" + order.order_id)
        self.versions[order.customer_id] += 1

    def remove_order(self, order_id: str) -> None:
        """Drop an order from blocking; its number stays a known reference."""
        state = self.orders.pop(order_id, None)
        if state is None:
            return
        self._unindex_amount(state.open, order_id)
        self.open_by_customer[state.customer_id].remove(state)
        self.versions[state.customer_id] += 1

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
        for customer_orders in self.open_by_customer.values():
            customer_orders.sort(key=_date_key)

    def open_orders(self, customer_id: str) -> list[OpenOrder]:
        """Return a customer's orders with money still open, oldest first."""
        return [o for o in self.open_by_customer.get(customer_id, ()) if o.open > 0]

    def orders_open_for(self, cents: int, *, limit: int) -> list[OpenOrder]:
        """Return up to `limit` orders open for exactly `cents`, first indexed first."""
        found = self.amount_index.get(cents)
        if not found:
            return []
        return [self.orders[oid] for oid in islice(found, limit)]

    def reduce_open(self, order_id: str, cents: int) -> None:
        """Take an allocation off an order's open amount."""
        order = self.orders.get(order_id)
        if order is None:
            return
        self.set_open(order_id, max(0, order.open - cents))

    def set_open(self, order_id: str, cents: int) -> None:
        """Set an order's open amount, keeping the amount index in step."""
        order = self.orders[order_id]
        self._unindex_amount(order.open, order_id)
        order.open = cents
        if order.open > 0:
            self.amount_index[order.open][order_id] = None
        self.versions[order.customer_id] += 1

    def _unindex_amount(self, cents: int, order_id: str) -> None:
        bucket = self.amount_index.get(cents)
        if bucket is not None:
            bucket.pop(order_id, None)
            if not bucket:
                del self.amount_index[cents]

    def learn_payer(
        self,
        *,
        customer_id: str,
        name: str,
        account: str,
        amount: Decimal | None = None,
    ) -> None:
        """Remember that this payer name and account paid for a customer.

        With `amount`, the payment also counts towards the customer's usual
        amounts, which the anomaly checks compare new payments with.
        """
        if account:
            self.seen_accounts[normalize_account(account)][customer_id] += 1
        if name:
            known = self.seen_names[normalize_name(name)]
            if customer_id not in known:
                self.name_cache.clear()
            known[customer_id] += 1
        self.payments[customer_id] += 1
        if amount is not None and amount > 0:
            kept = self.amounts.setdefault(customer_id, deque(maxlen=KEPT_AMOUNTS))
            kept.append(math.log10(float(amount)))

    def learn_memo(self, memo: str, shape: str) -> None:
        """Remember which allocation shape a confirmed line with this memo had."""
        self.memo_stats.learn(memo, shape)

    def add_to_balance(self, customer_id: str, cents: int, day: date) -> None:
        """Record money booked to (or, negative, taken from) a prepayment balance."""
        before = self.balances[customer_id]
        self.balances[customer_id] = before + cents
        if before <= 0 < before + cents:
            self.balance_since[customer_id] = day

    def usual_amount(self, customer_id: str) -> tuple[float, int]:
        """Return the median log10 amount of a customer's payments and their count."""
        kept = self.amounts.get(customer_id)
        if not kept:
            return 0.0, 0
        ordered = sorted(kept)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle], len(ordered)
        return (ordered[middle - 1] + ordered[middle]) / 2, len(ordered)

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
        key = (name, limit)
        cached = self.name_cache.get(key)
        if cached is None:
            cached = self.name_cache[key] = self._customers_by_name(name, limit)
        return list(cached)

    def _customers_by_name(self, name: str, limit: int) -> list[NameMatch]:
        full = normalize_name(name)
        core = core_name(name)
        matches: dict[str, NameMatch] = {}

        def keep(match: NameMatch) -> None:
            known = matches.get(match.customer_id)
            if known is None or match.score > known.score:
                matches[match.customer_id] = match

        whole = self.exact_names.get(full, set())
        for cid in whole:
            keep(NameMatch(cid, 100.0, exact=True))
        # The distinctive part alone (恒达机械设备) is as good as the whole
        # name, unless the whole legal name fits a customer exactly: the
        # others sharing the part are namesakes, often in other cities.
        if not whole:
            for cid in self.core_index.get(core, set()):
                keep(NameMatch(cid, 100.0, exact=True))
        for cid in self.alias_names.get(full, set()) | self.alias_names.get(
            core, set()
        ):
            keep(NameMatch(cid, 98.0, alias=True))
        for cid in self.seen_names.get(full, {}):
            keep(NameMatch(cid, 97.0, alias=True))
        # A name found exactly needs no search for look-alikes.
        if not matches:
            self._match_similar(name, core, keep)
        ranked = sorted(matches.values(), key=lambda m: (-m.score, m.customer_id))
        return ranked[:limit]

    def customers_in_memo(self, memo: str, *, limit: int = 3) -> dict[str, float]:
        """Return customers whose name the memo's Chinese text contains, 0-100.

        Payers who settle for someone else write so in the memo (代恒达机械付
        货款), and that name is the best clue to whose order it is.
        """
        text = han_text(memo)
        if len(text) < 4:
            return {}
        key = ("memo", text, limit)
        cached = self.name_cache.get(key)
        if cached is None:
            cached = self.name_cache[key] = self._customers_in_memo(text, limit)
        return dict(cached)

    def _customers_in_memo(self, text: str, limit: int) -> dict[str, float]:
        found: dict[str, float] = {}
        for cid in self.han_grams.shortlist(text, limit=10):
            core = self.core_names[cid]
            if len(core) < 2:
                continue
            score = fuzz.partial_ratio(core, text)
            for alias in self.customers[cid].aliases:
                score = max(score, fuzz.partial_ratio(core_name(alias), text))
            if score >= 75:
                found[cid] = float(score)
        ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))
        return dict(ranked[:limit])

    def _match_similar(self, name: str, core: str, keep) -> None:
        if has_latin(name):
            self._match_latin(latin_key(name), keep)
            return
        for cid in self.pinyin_names.get(pinyin_key(name), ()):
            keep(NameMatch(cid, 95.0, pinyin=True))
        self._match_fuzzy(core, keep)

    def _match_fuzzy(self, core: str, keep) -> None:
        shortlist = self.han_grams.shortlist(core)
        if not shortlist:
            return
        names = [self.core_names[cid] for cid in shortlist]
        whole = process.cdist([core], names, scorer=fuzz.ratio)[0]
        inside = process.cdist([core], names, scorer=fuzz.partial_ratio)[0]
        for cid, score, partial in zip(shortlist, whole, inside):
            # A short name inside the full one (恒达机械 in 恒达机械设备) counts.
            blended = max(
                float(score), float(partial) * 0.95 if len(core) >= 3 else 0.0
            )
            if blended >= 60:
                keep(NameMatch(cid, blended))

    def _match_latin(self, key: str, keep) -> None:
        if len(key) < 4:
            return
        for cid in self.latin_grams.shortlist(key):
            pinyin = self.latin_names[cid]
            score = fuzz.ratio(key, pinyin)
            if key.startswith(pinyin) or pinyin.startswith(key):
                score = max(score, 92.0)
            # Romanised names often carry the city first (SUZHOU HENGDA ...).
            score = max(score, fuzz.partial_ratio(pinyin, key) * 0.95)
            if score >= 75:
                keep(NameMatch(cid, float(score), pinyin=True))


def _date_key(order: OpenOrder) -> tuple[date, str]:
    return (order.order_date, order.order_id)
