"""Candidate generation: a small set of ways to book each line.

Blocking works on identity first (references in the memo, the payer's
account, the payer's name, a customer named in the memo), then on amounts
within each identified customer, and only for unknown payers on a global
exact-amount index. So the number of candidates per line does not grow with
the number of customers. A cheap first pass then keeps the most promising
`max_candidates` of them for the full features and the ranker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from features.references import TYPO, ReferenceHit, digits_of, one_typo_apart
from ingest.records import StatementRecord
from matcher.index import MatchIndex, NameMatch, OpenOrder
from models.money import to_cents

KINDS = (
    "reference",
    "exact",
    "fee_short",
    "deposit",
    "combination",
    "overpay",
    "partial",
    "balance",
    "amount_only",
    "none",
)

# First-pass preference between kinds of one customer. "none" always stays.
_KIND_PRIOR = {
    "reference": 3.0,
    "exact": 2.5,
    "fee_short": 1.5,
    "deposit": 1.5,
    "combination": 1.5,
    "overpay": 1.0,
    "balance": 1.0,
    "partial": 0.5,
    "amount_only": 0.0,
    "none": 100.0,
}
# Combination search looks at a customer's oldest open orders only, and
# stops counting exact sets after this many.
COMBINATION_POOL = 80
# How many of a line's likeliest customers get every kind of candidate.
FULL_SEARCH = 1
COMBINATION_COUNT_CAP = 30
ROUND_CENTS = 100_00


@dataclass
class Candidate:
    """One way to book a line: orders with amounts, a balance part, fees.

    Amounts are integer cents. `fees` are shortfalls booked as bank fees on
    orders and are not money from the line. `left_open` is what stays open
    on the candidate's orders beyond those fees.
    """

    kind: str
    customer_id: str | None
    orders: tuple[tuple[str, int], ...] = ()
    balance: int = 0
    fees: tuple[tuple[str, int], ...] = ()
    reasons: list[str] = field(default_factory=list)
    left_open: int = 0
    prior: float = 0.0
    order_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.order_ids = tuple(order_id for order_id, _ in self.orders)

    def key(self) -> tuple:
        """Return what the candidate books, for comparing with the truth."""
        orders = tuple(sorted(self.orders))
        return (self.customer_id or "", orders, self.balance)


@dataclass
class LineContext:
    """The blocking results of a line, shared by its candidates.

    `referenced_orders` are the open orders the memo names, with the hit
    strength. `supported_orders` are the open orders any part of the memo
    reaches, typos included, except the one-typo neighbours of numbers the
    memo spells exactly: `support_of` checks those on demand.
    `closed_references` counts numbers the memo names whose orders are no
    longer open.
    """

    line: StatementRecord
    cents: int
    hits: list[ReferenceHit]
    referenced_orders: dict[str, int]
    account_customers: dict[str, int]
    name_matches: dict[str, NameMatch]
    customers: list[str]
    supported_orders: dict[str, int] = field(default_factory=dict)
    closed_references: int = 0
    memo_customers: dict[str, float] = field(default_factory=dict)
    customer_weights: dict[str, float] = field(default_factory=dict)
    repeat: bool = False
    memo_odds: dict[str, float] = field(default_factory=dict)
    combination_counts: dict[str, int] = field(default_factory=dict)
    equal_counts: dict[str, int] = field(default_factory=dict)
    exact_digits: tuple[str, ...] = ()

    def support_of(self, order_id: str) -> int:
        """Return how strongly any part of the memo reaches an order, typos included."""
        known = self.supported_orders.get(order_id, 0)
        if known or not self.exact_digits:
            return known
        digits = digits_of(order_id)
        if any(one_typo_apart(digits, spelt) for spelt in self.exact_digits):
            return TYPO
        return 0


def referenced_orders(
    index: MatchIndex, hits: Iterable[ReferenceHit]
) -> dict[str, int]:
    """Resolve reference hits to open order ids with the hit strength."""
    return _resolve(index, ((hit.target_id, hit.strength) for hit in hits))[0]


def _resolve(index: MatchIndex, targets) -> tuple[dict[str, int], int]:
    """Return open orders of the targets with strengths, and closed ones counted."""
    found: dict[str, int] = {}
    closed = 0
    for target_id, strength in targets:
        kind, _, target = target_id.partition(":")
        order_ids = (target,) if kind == "order" else index.invoices.get(target, ())
        is_open = False
        for order_id in order_ids:
            if order_id in index.orders and index.orders[order_id].open > 0:
                found[order_id] = max(found.get(order_id, 0), strength)
                is_open = True
        closed += not is_open
    return found, closed


def block(index: MatchIndex, line: StatementRecord) -> LineContext:
    """Find the references, accounts and names that identify a line's payer."""
    scan = index.references.scan(line.memo)
    referenced, _ = _resolve(
        index, ((hit.target_id, hit.strength) for hit in scan.hits)
    )
    strong = [(hit.target_id, hit.strength) for hit in scan.hits if hit.strength > TYPO]
    _, closed = _resolve(index, strong)
    supported, _ = _resolve(index, scan.support.items())
    by_account = index.customers_by_account(line.counterparty_account)
    names = {m.customer_id: m for m in index.customers_by_name(line.counterparty_name)}
    in_memo = index.customers_in_memo(line.memo)

    weights: dict[str, float] = {}

    def weigh(cid: str, weight: float) -> None:
        weights[cid] = max(weights.get(cid, 0.0), weight)

    for cid, count in by_account.items():
        weigh(cid, 150.0 + min(count, 20))
    for cid, score in in_memo.items():
        weigh(cid, 99.0 + score / 100.0)
    for cid, match in names.items():
        weigh(cid, match.score)
    typos = [oid for oid, strength in referenced.items() if strength == TYPO]
    for order_id, strength in referenced.items():
        cid = index.orders[order_id].customer_id
        if strength > TYPO:
            weigh(cid, 200.0 + strength)
        elif len(typos) == 1 or cid in weights:
            # A typo hit is weaker evidence than the payer's known account
            # or exact name. Among many numbers one digit off often hits
            # another, so typo hits on several orders add no new customer.
            weigh(cid, 95.0)
    customers = sorted(weights, key=lambda cid: (-weights[cid], cid))
    customers = customers[: index.settings.max_customers]

    return LineContext(
        line=line,
        cents=to_cents(line.amount),
        hits=scan.hits,
        referenced_orders=referenced,
        account_customers=by_account,
        name_matches=names,
        customers=customers,
        supported_orders=supported,
        closed_references=closed,
        memo_customers=in_memo,
        customer_weights=weights,
        repeat=index.recent.is_repeat(line),
        memo_odds=index.memo_stats.log_odds(line.memo),
        exact_digits=scan.exact_digits,
    )


def generate(index: MatchIndex, context: LineContext) -> list[Candidate]:
    """Return the candidates of a line; `none` is always among them."""
    candidates: list[Candidate] = []
    if context.cents > 0:
        for rank, cid in enumerate(context.customers):
            # Customers behind the likeliest one get the cheap kinds only.
            found = _customer_candidates(index, context, cid, full=rank < FULL_SEARCH)
            weight = context.customer_weights.get(cid, 0.0) / 100.0
            for candidate in found:
                candidate.prior = weight + _KIND_PRIOR[candidate.kind]
            candidates += found
        if not context.customers:
            candidates += _amount_only(index, context)
    candidates.append(Candidate("none", None, reasons=["no match"], prior=100.0))
    return first_pass(_unique(candidates), index.settings.max_candidates)


def first_pass(candidates: list[Candidate], keep: int) -> list[Candidate]:
    """Keep the `keep` candidates with the best cheap prior, in their order."""
    if len(candidates) <= keep:
        return candidates
    ranked = sorted(range(len(candidates)), key=lambda i: -candidates[i].prior)
    chosen = sorted(ranked[:keep])
    return [candidates[i] for i in chosen]


@dataclass
class _Split:
    """A customer's open orders sorted by how their open amount meets the line's."""

    equal: list[OpenOrder] = field(default_factory=list)
    smaller: list[OpenOrder] = field(default_factory=list)
    larger: list[OpenOrder] = field(default_factory=list)
    # Larger by no more than the bank-fee tolerance.
    near: list[OpenOrder] = field(default_factory=list)
    # Larger, with the line's amount as their deposit: (order, reason).
    deposits: list[tuple[OpenOrder, str]] = field(default_factory=list)


def _split(index: MatchIndex, orders: list[OpenOrder], cents: int) -> _Split:
    """Sort orders, oldest first within each group, in one pass."""
    split = _Split()
    settings = index.settings
    fee_max = settings.fee_max_cents
    numerator, denominator = settings.fee_rate_ratio
    percents = settings.deposit_percents
    for order in orders:
        surplus = order.open - cents
        if surplus == 0:
            split.equal.append(order)
            continue
        if surplus < 0:
            split.smaller.append(order)
            continue
        split.larger.append(order)
        # The fee tolerance of MatchSettings.fee_tolerance_cents, inlined.
        if surplus <= fee_max and surplus <= order.open * numerator // denominator:
            split.near.append(order)
        if order.deposit == cents:
            split.deposits.append((order, f"amount = deposit of {order.order_id}"))
            continue
        for percent, share in zip(percents, order.shares):
            if abs(share - cents) <= 1:
                reason = f"amount = {percent} % deposit of {order.order_id}"
                split.deposits.append((order, reason))
                break
    return split


def _customer_candidates(
    index: MatchIndex, context: LineContext, cid: str, *, full: bool = True
) -> list[Candidate]:
    orders = index.open_orders(cid)
    cents = context.cents
    found: list[Candidate] = []

    strengths = context.referenced_orders
    referenced = [o for o in orders if o.order_id in strengths]
    if referenced:
        strongest = max(strengths[o.order_id] for o in referenced)
        referenced = [o for o in referenced if strengths[o.order_id] == strongest]
        candidate = _fill(index, "reference", cid, referenced, cents)
        names = ", ".join(o.order_id for o in referenced)
        candidate.reasons.insert(0, f"order {names} in memo")
        found.append(candidate)

    split = _split(index, orders, cents)
    found += _exact(cid, split.equal, cents, context)
    found += _fee_short(cid, split.near, cents)
    found += _deposits(cid, split.deposits, cents)
    if full:
        found += _combinations(index, cid, orders, cents, context)
        found += _overpay(index, cid, split.smaller, cents)
        found += _partial(cid, split.larger, cents)
    found.append(
        Candidate("balance", cid, balance=cents, reasons=["to the prepayment balance"])
    )
    return _oldest_of_equals(index, found, context.referenced_orders)


def _oldest_of_equals(
    index: MatchIndex, candidates: list[Candidate], referenced: dict[str, int]
) -> list[Candidate]:
    """Drop candidates that book like another one on orders of equal amounts.

    Every maker lists older orders first, and candidates on orders the memo
    names go before the rest, so what stays is the booking on the named
    orders, else on the oldest: equal open orders are no tie.
    """
    if referenced:
        candidates = sorted(
            candidates, key=lambda c: not any(oid in referenced for oid in c.order_ids)
        )
    orders = index.orders
    seen: set[tuple] = set()
    kept = []
    for candidate in candidates:
        shape = [
            (orders[oid].open, orders[oid].amount, cents)
            for oid, cents in candidate.orders
        ]
        if len(shape) > 1:
            shape.sort()
        signature = (
            candidate.kind,
            tuple(shape),
            candidate.balance,
            len(candidate.fees),
        )
        if candidate.kind == "reference" or signature not in seen:
            seen.add(signature)
            kept.append(candidate)
    return kept


def _fill(
    index: MatchIndex, kind: str, cid: str, orders: list[OpenOrder], cents: int
) -> Candidate:
    """Book the orders oldest first, then the rest to the balance.

    A shortfall within the fee tolerance on the last order is a bank fee,
    and a larger one leaves that order partly open.
    """
    left = cents
    booked: list[tuple[str, int]] = []
    fees: list[tuple[str, int]] = []
    reasons: list[str] = []
    left_open = 0
    for order in orders:
        if left <= 0:
            left_open += order.open
            reasons.append(f"{order.order_id} stays open by {_fmt(order.open)}")
            continue
        take = min(order.open, left)
        booked.append((order.order_id, take))
        left -= take
        short = order.open - take
        if 0 < short <= index.settings.fee_tolerance_cents(order.open) and left == 0:
            fees.append((order.order_id, short))
            reasons.append(f"short by {_fmt(short)}: bank fee on {order.order_id}")
        elif short > 0:
            left_open += short
            reasons.append(f"{order.order_id} stays open by {_fmt(short)}")
    if left > 0:
        reasons.append(f"{_fmt(left)} to the prepayment balance")
    return Candidate(kind, cid, tuple(booked), left, tuple(fees), reasons, left_open)


def _exact(
    cid: str, equal: list[OpenOrder], cents: int, context: LineContext
) -> list[Candidate]:
    context.equal_counts[cid] = len(equal)
    if not equal:
        return []
    named = [o for o in equal if o.order_id in context.referenced_orders]
    if named:
        # The memo settles which of several equal orders is meant.
        chosen = named[0]
        reasons = [f"amount = open amount of {chosen.order_id}"]
    else:
        # Several equal open orders are not a tie: the oldest is settled first.
        chosen = equal[0]
        reasons = [f"amount = open amount of {chosen.order_id}"]
        if len(equal) > 1:
            reasons.append(
                f"{len(equal)} open orders of this amount; the oldest is settled first"
            )
    return [Candidate("exact", cid, ((chosen.order_id, cents),), reasons=reasons)]


def _fee_short(cid: str, near: list[OpenOrder], cents: int) -> list[Candidate]:
    found = []
    for order in sorted(near, key=lambda o: o.open)[:2]:
        short = order.open - cents
        reason = f"amount = open amount of {order.order_id} less {_fmt(short)} fee"
        found.append(
            Candidate(
                "fee_short",
                cid,
                ((order.order_id, cents),),
                fees=((order.order_id, short),),
                reasons=[reason],
            )
        )
    return found


def _deposits(
    cid: str, deposits: list[tuple[OpenOrder, str]], cents: int
) -> list[Candidate]:
    return [
        Candidate(
            "deposit",
            cid,
            ((order.order_id, cents),),
            reasons=[reason],
            left_open=order.open - cents,
        )
        for order, reason in deposits[:3]
    ]


@dataclass
class _PairSums:
    """The sums of every two of a customer's oldest open orders, sorted."""

    version: int
    pool: list[OpenOrder]
    opens: np.ndarray
    sums: np.ndarray
    first: np.ndarray
    second: np.ndarray


@lru_cache(maxsize=COMBINATION_POOL + 1)
def _pair_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


def _pair_sums(index: MatchIndex, cid: str, orders: list[OpenOrder]) -> _PairSums:
    version = index.versions[cid]
    cached = index.combination_cache.get(cid)
    if cached is not None and cached.version == version:
        return cached
    pool = orders[:COMBINATION_POOL]
    opens = np.fromiter((o.open for o in pool), dtype=np.int64, count=len(pool))
    first, second = _pair_indices(len(pool))
    sums = opens[first] + opens[second]
    order = np.argsort(sums, kind="stable")
    cached = _PairSums(version, pool, opens, sums[order], first[order], second[order])
    index.combination_cache[cid] = cached
    return cached


def _combination_sets(pairs: _PairSums, cents: int, largest: int) -> list[tuple]:
    """Return index sets of two to `largest` pooled orders summing to `cents`."""
    sums, first, second = pairs.sums, pairs.first, pairs.second
    found: set[tuple[int, ...]] = set()

    def add(members: tuple[int, ...]) -> bool:
        if len(set(members)) == len(members):
            found.add(tuple(sorted(members)))
        return len(found) >= COMBINATION_COUNT_CAP

    low = sums.searchsorted(cents, "left")
    high = sums.searchsorted(cents, "right")
    for p in range(low, high):
        if add((int(first[p]), int(second[p]))):
            return sorted(found)
    if largest >= 3:
        targets = cents - pairs.opens
        lows = sums.searchsorted(targets, "left")
        highs = sums.searchsorted(targets, "right")
        for k in np.nonzero(highs > lows)[0]:
            for p in range(lows[k], highs[k]):
                if add((int(first[p]), int(second[p]), int(k))):
                    return sorted(found)
    if largest >= 4:
        targets = cents - sums
        lows = sums.searchsorted(targets, "left")
        highs = sums.searchsorted(targets, "right")
        for p in np.nonzero(highs > lows)[0]:
            for q in range(lows[p], highs[p]):
                members = (int(first[p]), int(second[p]), int(first[q]), int(second[q]))
                if add(members):
                    return sorted(found)
    return sorted(found)


def _combinations(
    index: MatchIndex,
    cid: str,
    orders: list[OpenOrder],
    cents: int,
    context: LineContext,
) -> list[Candidate]:
    """Find sets of two to four open orders that sum to the amount exactly."""
    context.combination_counts[cid] = 0
    if len(orders) < 2 or index.settings.max_combination < 2:
        return []
    pairs = _pair_sums(index, cid, orders)
    sets = _combination_sets(pairs, cents, index.settings.max_combination)
    context.combination_counts[cid] = len(sets)
    if not sets:
        return []

    # Pool positions follow the order dates, so the smallest positions are
    # the oldest orders, which the allocation convention settles first.
    sets.sort()
    candidates = []
    for members in sets[:3]:
        combo = [pairs.pool[i] for i in members]
        names = ", ".join(o.order_id for o in combo)
        candidates.append(
            Candidate(
                "combination",
                cid,
                tuple((o.order_id, o.open) for o in combo),
                reasons=[f"amount = sum of {len(combo)} open orders: {names}"],
            )
        )
    return candidates


def _overpay(
    index: MatchIndex, cid: str, smaller: list[OpenOrder], cents: int
) -> list[Candidate]:
    nearest = _distinct_open(
        sorted(smaller, key=lambda o: cents - o.open), len(smaller)
    )
    # The orders nearest below the amount are the likeliest ones overpaid,
    # and so are orders that leave a round sum over, as payers round up.
    chosen = nearest[:2]
    chosen += [o for o in nearest[2:] if (cents - o.open) % ROUND_CENTS == 0][:2]
    found = []
    for order in chosen:
        candidate = _fill(index, "overpay", cid, [order], cents)
        candidate.reasons.insert(0, f"pays {order.order_id} in full")
        found.append(candidate)
    return found


def _partial(cid: str, larger: list[OpenOrder], cents: int) -> list[Candidate]:
    return [
        Candidate(
            "partial",
            cid,
            ((order.order_id, cents),),
            reasons=[f"part payment of {order.order_id}"],
            left_open=order.open - cents,
        )
        for order in _distinct_open(larger, 2)
    ]


def _distinct_open(orders: list[OpenOrder], limit: int) -> list[OpenOrder]:
    """Return the first `limit` orders whose open amounts all differ."""
    seen: set[int] = set()
    kept = []
    for order in orders:
        if order.open not in seen:
            seen.add(order.open)
            kept.append(order)
            if len(kept) == limit:
                break
    return kept


def _amount_only(index: MatchIndex, context: LineContext) -> list[Candidate]:
    found = []
    for order in index.orders_open_for(context.cents, limit=10):
        found.append(
            Candidate(
                "amount_only",
                order.customer_id,
                ((order.order_id, context.cents),),
                reasons=[f"only the amount links this payer to {order.order_id}"],
            )
        )
    return found


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    seen: dict[tuple, Candidate] = {}
    for candidate in candidates:
        key = candidate.key() + (candidate.fees,)
        if key not in seen:
            seen[key] = candidate
    return list(seen.values())


def _fmt(cents: int) -> str:
    """Format cents as 1,234.56 without building a Decimal."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}"
