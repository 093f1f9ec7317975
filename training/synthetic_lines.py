"""Statement lines of a synthetic company, with their true allocations.

Each payment kind has a maker that picks a customer and orders, writes the
payer and memo the way real payers do and states the allocation a careful
clerk would book. Lines are made in booking-date order against the live
order book, so later lines see what earlier ones paid. In the history, the
orders that a line settles in full are placed on demand, aged like the
orders of the export. In the statement, lines pay the orders open at the
export.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from ingest.records import AllocationRecord, StatementRecord
from models.money import from_cents, to_cents
from training.synthetic_company import (
    ORDER_DAYS,
    Company,
    Customer,
    Order,
    order_amount,
)
from training.synthetic_memos import (
    invoice_memo,
    person_name,
    reference_memo,
    spell_reference,
    typo_reference,
)
from training.vocabulary import Vocabulary

KINDS = (
    "reference",
    "reference_typo",
    "invoice",
    "no_reference",
    "alias_name",
    "pinyin_name",
    "personal_account",
    "sister_company",
    "deposit",
    "instalment",
    "final_payment",
    "combination",
    "fee",
    "overpay",
    "advance",
    "same_amount",
    "duplicate",
    "wrong_reference",
    "unusual_amount",
    "other_income",
    "money_out",
)
# Kinds whose line settles whole orders, so a repeat of it can only go to
# the customer's prepayment balance.
REPEATABLE = ("reference", "no_reference", "invoice", "final_payment", "fee")
FEE_STEPS = (1000, 1500, 2000, 2500, 3000, 5000)
# A remainder above the largest bank fee is money beyond the order total.
OVER_ADVANCE_MIN = 50_00


@dataclass
class Draft:
    """A line being made: payer, memo, amount and the true allocation."""

    customer: Customer | None
    cents: int
    name: str = ""
    account: str = ""
    memo: str = ""
    orders: list[tuple[str, int]] = field(default_factory=list)
    balance: int = 0
    fees: list[tuple[str, int]] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)


@dataclass
class SimLine:
    """A made statement line with its kind, truth and true anomalies."""

    record: StatementRecord
    kind: str
    truth: list[AllocationRecord]
    anomalies: list[str]
    settles_whole: bool = False


class LineSimulator:
    """Makes statement lines of each payment kind against a company."""

    def __init__(self, rng: random.Random, company: Company, words: Vocabulary):
        self.rng = rng
        self.company = company
        self.words = words
        self.made_lines: list[SimLine] = []
        self.history = False
        self.makers: dict[str, Callable[[date], Draft | None]] = {
            kind: getattr(self, "_" + kind) for kind in KINDS
        }

    def simulate(
        self,
        *,
        count: int,
        shares: dict[str, float],
        start: date,
        days: int,
        prefix: str,
        history: bool,
    ) -> list[SimLine]:
        """Make `count` lines over `days` days from `start`, in date order."""
        self.history = history
        self.made_lines = []
        kinds = _kind_counts(shares, count)
        self.rng.shuffle(kinds)
        offsets = sorted(self.rng.randrange(days) for _ in kinds)
        for number, (kind, offset) in enumerate(zip(kinds, offsets), start=1):
            day = start + timedelta(days=offset)
            self.made_lines.append(self._line(kind, day, f"{prefix}{number:05d}"))
        return self.made_lines

    def _line(self, kind: str, day: date, line_ref: str) -> SimLine:
        for attempt in (kind, "no_reference", "advance", "other_income"):
            draft = self.makers[attempt](day)
            if draft is not None:
                return self._finish(attempt, draft, day, line_ref)
        raise RuntimeError(f"no payment kind could make a line on {day}")

    def _finish(self, kind: str, draft: Draft, day: date, line_ref: str) -> SimLine:
        record = StatementRecord(
            line_ref=line_ref,
            booking_date=day,
            amount=from_cents(draft.cents),
            currency="CNY",
            counterparty_name=draft.name,
            counterparty_account=draft.account,
            memo=draft.memo,
            bank_reference=f"{day:%Y%m%d}{self.rng.randrange(10**8):08d}",
        )
        truth = _truth_rows(line_ref, draft)
        settles = kind in REPEATABLE and not draft.balance
        return SimLine(record, kind, truth, list(draft.anomalies), settles)

    # Payers ---------------------------------------------------------------

    def _usual_payer(self, draft: Draft) -> Draft:
        """Pay under the master name from a known, empty or new account."""
        customer = draft.customer
        roll = self.rng.random()
        draft.name = customer.name
        if roll < 0.7:
            draft.account = self.rng.choice(customer.accounts)
        elif roll < 0.8 and customer.other_accounts:
            draft.account = self.rng.choice(customer.other_accounts)
        elif roll < 0.9:
            draft.account = ""
        else:
            draft.account = _new_account(self.rng)
        return draft

    # Customers and orders -------------------------------------------------

    def _customer_with(self, want: Callable[[Customer], list[Order]]):
        """Draw customers until one has orders that `want` accepts."""
        for _ in range(40):
            customer = self.company.pick_customer(self.rng)
            orders = want(customer)
            if orders:
                return customer, orders
        return None, []

    def _one_order(self, day: date, *, at_least: int = 0):
        """Return a customer and one order to settle, placed before `day`."""
        if self.history:
            customer = self.company.pick_customer(self.rng)
            amount = order_amount(self.rng)
            while amount < at_least:
                amount = order_amount(self.rng)
            return customer, self._placed(customer, day, amount=amount)
        customer, orders = self._customer_with(
            lambda c: [o for o in self.company.open_orders(c) if o.open >= at_least]
        )
        if customer is None:
            return None, None
        return customer, self.rng.choice(orders)

    def _placed(
        self,
        customer: Customer,
        day: date,
        *,
        amount: int | None = None,
        invoice: bool = True,
    ) -> Order:
        # Aged like the orders open at the export, so history and statement
        # lines see orders of the same ages.
        placed = day - timedelta(days=self.rng.randint(1, ORDER_DAYS))
        order = self.company.new_order(self.rng, customer, placed=placed, amount=amount)
        if invoice and self.rng.random() < 0.2:
            self.company.new_invoice([order], self.rng)
        return order

    def _oldest_equal(
        self, customer: Customer, order: Order, cents: int, taken=()
    ) -> Order:
        """Return the oldest open order of the customer open for `cents`.

        Without a reference, equal open amounts settle oldest first. Orders
        in `taken` are already part of the same payment.
        """
        for other in self.company.open_orders(customer):
            if other.open == cents and other not in taken:
                return other
        return order

    def _settle(self, draft: Draft, order: Order, cents: int) -> None:
        draft.orders.append((order.order_id, cents))
        order.open -= cents
        order.touched = True

    # Makers: one order settled in full -------------------------------------

    def _full_payment(self, day: date, *, memo: str) -> Draft | None:
        customer, order = self._one_order(day)
        if customer is None:
            return None
        cents = order.open
        if memo == "none":
            order = self._oldest_equal(customer, order, cents)
        draft = Draft(customer, cents)
        draft.memo = self._memo_for(memo, order)
        self._settle(draft, order, cents)
        return draft

    def _memo_for(self, style: str, order: Order) -> str:
        words = self.words
        if style == "reference":
            return reference_memo(
                self.rng, spell_reference(self.rng, order.order_id), words
            )
        if style == "typo":
            return reference_memo(
                self.rng, typo_reference(self.rng, order.order_id), words
            )
        return self.rng.choice(words.goods_words + ("", ""))

    def _reference(self, day: date) -> Draft | None:
        draft = self._full_payment(day, memo="reference")
        return draft and self._usual_payer(draft)

    def _reference_typo(self, day: date) -> Draft | None:
        draft = self._full_payment(day, memo="typo")
        return draft and self._usual_payer(draft)

    def _no_reference(self, day: date) -> Draft | None:
        draft = self._full_payment(day, memo="none")
        return draft and self._usual_payer(draft)

    def _payer_kind_payment(self, day: date) -> Draft | None:
        style = "reference" if self.rng.random() < 0.5 else "none"
        return self._full_payment(day, memo=style)

    def _alias_name(self, day: date) -> Draft | None:
        draft = self._payer_kind_payment(day)
        if draft is None:
            return None
        customer = draft.customer
        draft.name = _name_variant(self.rng, customer, self.words)
        draft.account = "" if self.rng.random() < 0.5 else _new_account(self.rng)
        return draft

    def _pinyin_name(self, day: date) -> Draft | None:
        draft = self._payer_kind_payment(day)
        if draft is None:
            return None
        customer = draft.customer
        draft.name = customer.pinyin_name
        draft.account = customer.foreign_account if self.rng.random() < 0.6 else ""
        # Cross-border payers write English memos, with the order number
        # where the Chinese memo would have had one.
        english = self.rng.choice(self.words.english_goods)
        if any(ch.isdigit() for ch in draft.memo):
            order_id = draft.orders[0][0]
            english = f"{english} {spell_reference(self.rng, order_id)}"
        draft.memo = english
        return draft

    def _personal_account(self, day: date) -> Draft | None:
        draft = self._payer_kind_payment(day)
        if draft is None:
            return None
        customer = draft.customer
        draft.name = customer.representative
        draft.account = customer.representative_account
        return draft

    def _sister_company(self, day: date) -> Draft | None:
        draft = self._payer_kind_payment(day)
        if draft is None:
            return None
        customer = draft.customer
        draft.name = customer.sister_name
        draft.account = customer.sister_account
        if self.rng.random() < 0.3:
            draft.memo = (
                f"代{customer.brand}{customer.industry[:2]}付{draft.memo or '货款'}"
            )
        return draft

    def _invoice(self, day: date) -> Draft | None:
        customer, orders = self._invoiced_orders(day)
        if customer is None:
            return None
        invoice_id = orders[0].invoice_id
        draft = Draft(customer, sum(o.open for o in orders))
        draft.memo = invoice_memo(self.rng, invoice_id)
        for order in orders:
            self._settle(draft, order, order.open)
        return self._usual_payer(draft)

    def _invoiced_orders(self, day: date):
        company = self.company
        if self.history:
            customer = company.pick_customer(self.rng)
            size = self.rng.choice((1, 1, 2))
            orders = [self._placed(customer, day, invoice=False) for _ in range(size)]
            company.new_invoice(orders, self.rng)
            return customer, orders

        def invoiced(customer: Customer) -> list[Order]:
            found = {}
            for order in company.open_orders(customer):
                if order.invoice_id and order.open == order.amount:
                    found.setdefault(order.invoice_id, []).append(order)
            invoices = company.invoices
            complete = [
                orders
                for iid, orders in found.items()
                if len(orders) == len(invoices[iid].order_ids)
            ]
            return self.rng.choice(complete) if complete else []

        return self._customer_with(invoiced)

    def _final_payment(self, day: date) -> Draft | None:
        if self.history:
            customer = self.company.pick_customer(self.rng)
            order = self._placed(customer, day)
            # The deposit was paid before the history began.
            order.open -= order.deposit or order.amount * 3 // 10
        else:
            customer, orders = self._customer_with(
                lambda c: [o for o in self.company.open_orders(c) if o.open < o.amount]
            )
            if customer is None:
                return None
            order = self.rng.choice(orders)
        cents = order.open
        with_reference = self.rng.random() < 0.5
        if not with_reference:
            order = self._oldest_equal(customer, order, cents)
        draft = Draft(customer, cents)
        word = self.rng.choice(self.words.final_words)
        draft.memo = self._with_word(order, word, with_reference)
        self._settle(draft, order, cents)
        return self._usual_payer(draft)

    def _with_word(self, order: Order, word: str, with_reference: bool) -> str:
        if not with_reference:
            return word
        spelled = spell_reference(self.rng, order.order_id)
        return self.rng.choice(
            (f"{spelled}{word}", f"{word} {spelled}", f"{spelled} {word}")
        )

    # Makers: part payments ------------------------------------------------

    def _export_order(self, day: date, want: Callable[[Order], bool]):
        """Pick a customer's export order placed before `day` that `want` accepts."""
        return self._customer_with(
            lambda c: [
                o for o in self.company.open_orders(c) if o.order_date < day and want(o)
            ]
        )

    def _deposit(self, day: date) -> Draft | None:
        customer, orders = self._export_order(
            day, lambda o: o.open == o.amount and o.amount >= 2000_00
        )
        if customer is None:
            return None
        order = self.rng.choice(orders)
        cents = order.deposit or order.amount * self.rng.choice((3, 5)) // 10
        with_reference = self.rng.random() < 0.6
        if not with_reference:
            order = self._oldest_deposit(customer, order, cents)
        draft = Draft(customer, cents)
        word = self.rng.choice(self.words.deposit_words)
        draft.memo = self._with_word(order, word, with_reference)
        self._settle(draft, order, cents)
        return self._usual_payer(draft)

    def _oldest_deposit(self, customer: Customer, order: Order, cents: int) -> Order:
        for other in self.company.open_orders(customer):
            if other.open != other.amount or other.open <= cents:
                continue
            shares = {other.amount * 3 // 10, other.amount // 2, other.deposit}
            if cents in shares:
                return other
        return order

    def _instalment(self, day: date) -> Draft | None:
        customer, orders = self._export_order(day, lambda o: o.open >= 3000_00)
        if customer is None:
            return None
        order = self.rng.choice(orders)
        share = self.rng.uniform(0.2, 0.6)
        cents = max(100_00, int(order.open * share) // 100_00 * 100_00)
        draft = Draft(customer, cents)
        word = self.rng.choice(self.words.instalment_words)
        with_reference = self.rng.random() < 0.95
        if not with_reference:
            order = self._oldest_equal(customer, order, order.open)
        draft.memo = self._with_word(order, word, with_reference)
        self._settle(draft, order, cents)
        return self._usual_payer(draft)

    # Makers: several orders, fees, overpayments ----------------------------

    def _combination(self, day: date) -> Draft | None:
        size = self.rng.choice((2, 2, 3, 4))
        if self.history:
            customer = self.company.pick_customer(self.rng)
            orders = [self._placed(customer, day) for _ in range(size)]
        else:
            customer, pool = self._customer_with(
                lambda c: (
                    self.company.open_orders(c)
                    if len(self.company.open_orders(c)) >= size
                    else []
                )
            )
            if customer is None:
                return None
            orders = self.rng.sample(pool, size)
        with_reference = self.rng.random() < 0.5
        if not with_reference:
            orders = self._oldest_twins(customer, orders)
        orders.sort(key=lambda o: (o.order_date, o.order_id))
        draft = Draft(customer, sum(o.open for o in orders))
        if with_reference:
            spelled = [spell_reference(self.rng, o.order_id) for o in orders]
            separator = self.rng.choice((",", " ", "、", "/", "，"))
            draft.memo = separator.join(spelled) + self.rng.choice(("", " 货款", "款"))
        else:
            draft.memo = self.rng.choice(self.words.goods_words + ("",))
        for order in orders:
            self._settle(draft, order, order.open)
        return self._usual_payer(draft)

    def _oldest_twins(self, customer: Customer, orders: list[Order]) -> list[Order]:
        """Swap each order for the oldest unchosen one of the same open amount."""
        chosen: list[Order] = []
        for order in sorted(orders, key=lambda o: (o.order_date, o.order_id)):
            chosen.append(self._oldest_equal(customer, order, order.open, chosen))
        return chosen

    def _fee(self, day: date) -> Draft | None:
        customer, order = self._one_order(day, at_least=1000_00)
        if customer is None:
            return None
        style = "reference" if self.rng.random() < 0.5 else "none"
        if style == "none":
            order = self._oldest_equal(customer, order, order.open)
        limit = min(5000, order.open // 100)
        steps = [fee for fee in FEE_STEPS if fee <= limit]
        fee = self.rng.choice(steps)
        cents = order.open - fee
        draft = Draft(customer, cents)
        draft.memo = self._memo_for(style, order)
        draft.fees.append((order.order_id, fee))
        self._settle(draft, order, cents)
        order.open -= fee
        return self._usual_payer(draft)

    def _overpay(self, day: date) -> Draft | None:
        customer, order = self._one_order(day)
        if customer is None:
            return None
        extra = self.rng.choice((100_00, 500_00, 1000_00, 2000_00, 5000_00))
        if self.rng.random() < 0.3:
            extra = self.rng.randint(1_00, 3000_00)
        style = "reference" if self.rng.random() < 0.6 else "none"
        if style == "none":
            order = self._oldest_equal(customer, order, order.open)
        draft = Draft(customer, order.open + extra, balance=extra)
        draft.memo = self._memo_for(style, order)
        if extra > OVER_ADVANCE_MIN:
            # Money beyond the order's total is an over_advance by definition.
            draft.anomalies.append("over_advance")
        self._settle(draft, order, order.open)
        return self._usual_payer(draft)

    def _advance(self, day: date) -> Draft | None:
        customer = self.company.pick_customer(self.rng)
        open_amounts = {o.open for o in self.company.open_orders(customer)}
        for _ in range(10):
            cents = (
                self.rng.choice((5_000, 10_000, 20_000, 30_000, 50_000, 100_000)) * 100
            )
            if cents not in open_amounts:
                break
        else:
            return None
        draft = Draft(customer, cents, balance=cents)
        draft.memo = self.rng.choice(self.words.advance_words)
        return self._usual_payer(draft)

    def _same_amount(self, day: date) -> Draft | None:
        if self.history:
            customer = self.company.pick_customer(self.rng)
            cents = order_amount(self.rng)
            orders = [
                self._placed(customer, day, amount=cents, invoice=False)
                for _ in range(2)
            ]
        else:
            customer, orders = self._equal_open_orders()
            if customer is None:
                return None
        oldest = min(orders, key=lambda o: (o.order_date, o.order_id))
        draft = Draft(customer, oldest.open)
        draft.memo = self.rng.choice(self.words.goods_words + ("",))
        self._settle(draft, oldest, oldest.open)
        return self._usual_payer(draft)

    def _equal_open_orders(self):
        ids = self.company.same_amount_customers
        for _ in range(20):
            if not ids:
                break
            customer = self.company.customer(self.rng.choice(ids))
            by_open: dict[int, list[Order]] = {}
            for order in self.company.open_orders(customer):
                by_open.setdefault(order.open, []).append(order)
            groups = [orders for orders in by_open.values() if len(orders) >= 2]
            if groups:
                return customer, self.rng.choice(groups)
        return None, []

    # Makers: repeats and money from no customer ----------------------------

    def _duplicate(self, day: date) -> Draft | None:
        window = [
            line
            for line in self.made_lines[-400:]
            if line.settles_whole
            and timedelta(days=1) <= day - line.record.booking_date <= timedelta(days=7)
        ]
        if not window:
            return None
        original = self.rng.choice(window)
        record = original.record
        customer = self.company.customer(original.truth[0].customer_id)
        cents = to_cents(record.amount)
        draft = Draft(customer, cents, balance=cents, anomalies=["duplicate"])
        draft.name = record.counterparty_name
        draft.account = record.counterparty_account
        draft.memo = record.memo
        return draft

    def _wrong_reference(self, day: date) -> Draft | None:
        """Pay one order exactly while the memo names another of the customer."""
        if self.history:
            customer = self.company.pick_customer(self.rng)
            paid = self._placed(customer, day, invoice=False)
            named = self._placed(customer, day, invoice=False)
        else:
            customer, orders = self._customer_with(
                lambda c: (
                    self.company.open_orders(c)
                    if len(self.company.open_orders(c)) >= 2
                    else []
                )
            )
            if customer is None:
                return None
            paid, named = self.rng.sample(orders, 2)
        if paid.open == named.open or _one_edit_apart(paid.order_id, named.order_id):
            return None
        draft = Draft(customer, paid.open, anomalies=["reference_conflict"])
        draft.memo = self._memo_for("reference", named)
        self._settle(draft, paid, paid.open)
        return self._usual_payer(draft)

    def _unusual_amount(self, day: date) -> Draft | None:
        """Pay many times the customer's usual amount, matching no order."""
        customer = self.company.pick_customer(self.rng)
        amounts = sorted(
            self.company.orders[oid].amount
            for oid in customer.order_ids
            if oid in self.company.orders
        )
        if not amounts:
            return None
        usual = amounts[len(amounts) // 2]
        cents = int(usual * self.rng.uniform(25, 60)) // 100_00 * 100_00
        draft = Draft(customer, cents, balance=cents, anomalies=["unusual_amount"])
        draft.memo = self.rng.choice(self.words.goods_words)
        return self._usual_payer(draft)

    def _other_income(self, day: date) -> Draft | None:
        rng, words = self.rng, self.words
        roll = rng.random()
        if roll < 0.35:
            city = rng.choice(words.cities)
            name = f"{rng.choice(words.banks)}{city}分行" if rng.random() < 0.6 else ""
            return Draft(
                None,
                rng.randint(50, 300_000),
                name=name,
                memo=rng.choice(("利息", "结息", "存款利息")),
            )
        if roll < 0.6:
            city = rng.choice(words.cities)
            return Draft(
                None,
                rng.randint(1000_00, 80_000_00),
                name=f"国家金库{city}中心支库",
                memo=rng.choice(("退税", "出口退税", "增值税退税")),
            )
        cents = rng.choice(
            (rng.randint(100_00, 20_000_00), rng.randint(1, 50) * 1000_00)
        )
        return Draft(
            None,
            cents,
            name=person_name(rng),
            account=_new_account(rng, personal=True),
            memo=rng.choice(("", "转账", "还款", "往来款")),
        )

    def _money_out(self, day: date) -> Draft | None:
        rng, words = self.rng, self.words
        if rng.random() < 0.3:
            return Draft(
                None, -rng.choice((500, 1000, 1500, 2000, 5000)), memo="手续费"
            )
        city = rng.choice(words.cities)
        supplier = f"{city}{rng.choice(sorted(words.homophones))}{rng.choice(words.industries)}有限公司"
        return Draft(
            None,
            -rng.randint(500_00, 200_000_00),
            name=supplier,
            account=_new_account(rng),
            memo=rng.choice(words.expense_words),
        )


def _kind_counts(shares: dict[str, float], count: int) -> list[str]:
    """Return `count` kinds in the given shares, by largest remainder."""
    exact = {kind: share * count for kind, share in shares.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    left = count - sum(counts.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k))
    for kind in by_remainder[:left]:
        counts[kind] += 1
    return [kind for kind in sorted(counts) for _ in range(counts[kind])]


def _truth_rows(line_ref: str, draft: Draft) -> list[AllocationRecord]:
    if draft.customer is None:
        return [AllocationRecord(line_ref, "", "", "none", from_cents(draft.cents))]
    cid = draft.customer.customer_id
    rows = [
        AllocationRecord(line_ref, cid, order_id, "order", from_cents(cents))
        for order_id, cents in draft.orders
    ]
    if draft.balance:
        rows.append(
            AllocationRecord(line_ref, cid, "", "balance", from_cents(draft.balance))
        )
    rows += [
        AllocationRecord(line_ref, cid, order_id, "fee", from_cents(cents))
        for order_id, cents in draft.fees
    ]
    return rows


def _one_edit_apart(first: str, second: str) -> bool:
    """Tell whether two numbers' digits differ by at most one edit or swap."""
    a = "".join(ch for ch in first if ch.isdigit())
    b = "".join(ch for ch in second if ch.isdigit())
    if a == b:
        return True
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        i, j = (diffs + [0, 0])[:2]
        return len(diffs) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    if abs(len(a) - len(b)) != 1:
        return False
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _new_account(rng: random.Random, *, personal: bool = False) -> str:
    head = "6222" if personal else str(rng.randint(1, 9))
    length = 19 if personal else rng.choice((15, 17, 19))
    return head + "".join(str(rng.randint(0, 9)) for _ in range(length - len(head)))


def _name_variant(rng: random.Random, customer: Customer, words: Vocabulary) -> str:
    """Write a customer's name the way payers and banks shorten or garble it."""
    brand, industry, city, suffix = (
        customer.brand,
        customer.industry,
        customer.city,
        customer.suffix,
    )
    roll = rng.random()
    if roll < 0.3:
        return brand + industry
    if roll < 0.45:
        return f"{brand}{industry}({city}){suffix}"
    if roll < 0.6:
        return f"{brand}{industry}（{city}）{suffix}"
    if roll < 0.8:
        position = rng.randrange(len(brand))
        typo = "".join(
            words.homophones.get(ch, ch) if i == position else ch
            for i, ch in enumerate(brand)
        )
        return f"{city}{typo}{industry}{suffix}"
    return f"{city}{brand}{industry}"
