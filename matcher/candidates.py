"""Candidate generation: a small set of ways to book each line.

Blocking works on identity first (references in the memo, the payer's
account, the payer's name), then on amounts within each identified
customer, and only for unknown payers on a global exact-amount index. So the
number of candidates per line does not grow with the number of customers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from features.references import TYPO, ReferenceHit
from ingest.records import StatementRecord
from matcher.index import MatchIndex, NameMatch, OpenOrder
from models.money import from_cents, to_cents

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


@dataclass
class Candidate:
    """One way to book a line: orders with amounts, a balance part, fees.

    Amounts are integer cents. `fees` are shortfalls booked as bank fees on
    orders and are not money from the line.
    """

    kind: str
    customer_id: str | None
    orders: tuple[tuple[str, int], ...] = ()
    balance: int = 0
    fees: tuple[tuple[str, int], ...] = ()
    reasons: list[str] = field(default_factory=list)

    def key(self) -> tuple:
        """Return what the candidate books, for comparing with the truth."""
        orders = tuple(sorted(self.orders))
        return (self.customer_id or "", orders, self.balance)

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(order_id for order_id, _ in self.orders)


@dataclass
class LineContext:
    """What blocking found out about a line, shared by its candidates."""

    line: StatementRecord
    cents: int
    hits: list[ReferenceHit]
    referenced_orders: dict[str, int]
    account_customers: dict[str, int]
    name_matches: dict[str, NameMatch]
    customers: list[str]


def referenced_orders(index: MatchIndex, hits: Iterable[ReferenceHit]) -> dict[str, int]:
    """Resolve reference hits to order ids with the hit strength."""
    found: dict[str, int] = {}
    for hit in hits:
        kind, _, target = hit.target_id.partition(":")
        order_ids = (target,) if kind == "order" else index.invoices.get(target, ())
        for order_id in order_ids:
            if order_id in index.orders:
                found[order_id] = max(found.get(order_id, 0), hit.strength)
    return found


def block(index: MatchIndex, line: StatementRecord) -> LineContext:
    """Find the references, accounts and names that identify a line's payer."""
    hits = index.references.find(line.memo)
    referenced = referenced_orders(index, hits)
    by_account = index.customers_by_account(line.counterparty_account)
    names = {m.customer_id: m for m in index.customers_by_name(line.counterparty_name)}

    ranked: dict[str, float] = {}
    for order_id, strength in referenced.items():
        cid = index.orders[order_id].customer_id
        # A typo hit is weaker evidence than the payer's known account or
        # exact name, because one digit off often lands on another order.
        weight = 200.0 + strength if strength > TYPO else 95.0
        ranked[cid] = max(ranked.get(cid, 0.0), weight)
    for cid, count in by_account.items():
        ranked[cid] = max(ranked.get(cid, 0.0), 150.0 + min(count, 20))
    for cid, match in names.items():
        ranked[cid] = max(ranked.get(cid, 0.0), match.score)
    customers = sorted(ranked, key=lambda cid: (-ranked[cid], cid))
    customers = customers[: index.settings.max_customers]

    return LineContext(
        line=line,
        cents=to_cents(line.amount),
        hits=hits,
        referenced_orders=referenced,
        account_customers=by_account,
        name_matches=names,
        customers=customers,
    )


def generate(index: MatchIndex, context: LineContext) -> list[Candidate]:
    """Return the candidates of a line; `none` is always among them."""
    candidates: list[Candidate] = []
    if context.cents > 0:
        for cid in context.customers:
            candidates += _customer_candidates(index, context, cid)
        if not context.customers:
            candidates += _amount_only(index, context)
    candidates.append(Candidate("none", None, reasons=["no match"]))
    return _unique(candidates)


def _customer_candidates(
    index: MatchIndex, context: LineContext, cid: str
) -> list[Candidate]:
    orders = index.open_orders(cid)
    cents = context.cents
    found: list[Candidate] = []

    strengths = context.referenced_orders
    referenced = [o for o in orders if o.order_id in strengths]
    if referenced:
        strongest = max(strengths[o.order_id] for o in referenced)
        referenced = [o for o in referenced if strengths[o.order_id] == strongest]
        found.append(_fill(index, "reference", cid, referenced, cents))
        found[-1].reasons.insert(
            0, "order " + ", ".join(o.order_id for o in referenced) + " in memo"
        )

    found += _exact(cid, orders, cents)
    found += _fee_short(index, cid, orders, cents)
    found += _deposits(index, cid, orders, cents)
    found += _combinations(index, cid, orders, cents)
    found += _overpay_and_partial(index, cid, orders, cents)
    found.append(
        Candidate("balance", cid, balance=cents, reasons=["to the prepayment balance"])
    )
    return found


def _fill(
    index: MatchIndex, kind: str, cid: str, orders: list[OpenOrder], cents: int
) -> Candidate:
    """Book the orders oldest first, then the rest to the balance.

    A shortfall within the fee tolerance on the last order is a bank fee.
    """
    left = cents
    booked: list[tuple[str, int]] = []
    fees: list[tuple[str, int]] = []
    reasons: list[str] = []
    for order in orders:
        if left <= 0:
            break
        take = min(order.open, left)
        booked.append((order.order_id, take))
        left -= take
        short = order.open - take
        if 0 < short <= index.settings.fee_tolerance_cents(order.open) and left == 0:
            fees.append((order.order_id, short))
            reasons.append(f"short by {_fmt(short)}: bank fee on {order.order_id}")
        elif short > 0:
            reasons.append(f"{order.order_id} stays open by {_fmt(short)}")
    if left > 0:
        reasons.append(f"{_fmt(left)} to the prepayment balance")
    return Candidate(kind, cid, tuple(booked), left, tuple(fees), reasons)


def _exact(cid: str, orders: list[OpenOrder], cents: int) -> list[Candidate]:
    equal = [o for o in orders if o.open == cents]
    if not equal:
        return []
    # Several equal open orders are not a tie: the oldest is settled first.
    oldest = equal[0]
    reason = f"amount = open amount of {oldest.order_id}"
    reasons = [reason]
    if len(equal) > 1:
        reasons.append(
            f"{len(equal)} open orders of this amount; the oldest is settled first"
        )
    return [Candidate("exact", cid, ((oldest.order_id, cents),), reasons=reasons)]


def _fee_short(
    index: MatchIndex, cid: str, orders: list[OpenOrder], cents: int
) -> list[Candidate]:
    found = []
    for order in orders:
        short = order.open - cents
        if 0 < short <= index.settings.fee_tolerance_cents(order.open):
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
    return found[:2]


def _deposits(
    index: MatchIndex, cid: str, orders: list[OpenOrder], cents: int
) -> list[Candidate]:
    found = []
    for order in orders:
        if order.open <= cents:
            continue
        reason = None
        if order.deposit is not None and order.deposit == cents:
            reason = f"amount = deposit of {order.order_id}"
        else:
            for share in index.settings.deposit_shares:
                if abs(int(order.amount * share) - cents) <= 1:
                    reason = f"amount = {int(share * 100)} % deposit of {order.order_id}"
                    break
        if reason:
            found.append(
                Candidate("deposit", cid, ((order.order_id, cents),), reasons=[reason])
            )
    return found[:3]


def _combinations(
    index: MatchIndex, cid: str, orders: list[OpenOrder], cents: int
) -> list[Candidate]:
    """Find sets of two to four open orders that sum to the amount exactly."""
    pool = [o for o in orders if o.open < cents][:60]
    if len(pool) < 2:
        return []
    found: list[tuple[OpenOrder, ...]] = []
    by_open: dict[int, list[int]] = {}
    for i, order in enumerate(pool):
        by_open.setdefault(order.open, []).append(i)

    for i, j in combinations(range(len(pool)), 2):
        if pool[i].open + pool[j].open == cents:
            found.append((pool[i], pool[j]))
    if index.settings.max_combination >= 3:
        for i, j in combinations(range(len(pool)), 2):
            rest = cents - pool[i].open - pool[j].open
            for k in by_open.get(rest, ()):
                if k > j:
                    found.append((pool[i], pool[j], pool[k]))
    if index.settings.max_combination >= 4 and len(pool) <= 40:
        found += _four_order_sets(pool, cents)
    if not found:
        return []

    # Prefer the set with the oldest orders, as the allocation convention does.
    found.sort(key=lambda combo: sorted((o.order_date, o.order_id) for o in combo))
    candidates = []
    for combo in found[:3]:
        combo = tuple(sorted(combo, key=lambda o: (o.order_date, o.order_id)))
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


def _four_order_sets(pool: list[OpenOrder], cents: int) -> list[tuple[OpenOrder, ...]]:
    pairs: dict[int, list[tuple[int, int]]] = {}
    for i, j in combinations(range(len(pool)), 2):
        pairs.setdefault(pool[i].open + pool[j].open, []).append((i, j))
    found = []
    for i, j in combinations(range(len(pool)), 2):
        for k, m in pairs.get(cents - pool[i].open - pool[j].open, ()):
            if k > j:
                found.append((pool[i], pool[j], pool[k], pool[m]))
                if len(found) >= 5:
                    return found
    return found


def _overpay_and_partial(
    index: MatchIndex, cid: str, orders: list[OpenOrder], cents: int
) -> list[Candidate]:
    found = []
    smaller = [o for o in orders if o.open < cents]
    # The order nearest below the amount is the likeliest one overpaid.
    for order in sorted(smaller, key=lambda o: cents - o.open)[:2]:
        candidate = _fill(index, "overpay", cid, [order], cents)
        candidate.reasons.insert(0, f"pays {order.order_id} in full")
        found.append(candidate)
    larger = [o for o in orders if o.open > cents]
    for order in larger[:2]:
        found.append(
            Candidate(
                "partial",
                cid,
                ((order.order_id, cents),),
                reasons=[f"part payment of {order.order_id}"],
            )
        )
    return found


def _amount_only(index: MatchIndex, context: LineContext) -> list[Candidate]:
    found = []
    for order_id in sorted(index.amount_index.get(context.cents, ()))[:10]:
        order = index.orders[order_id]
        found.append(
            Candidate(
                "amount_only",
                order.customer_id,
                ((order_id, context.cents),),
                reasons=[f"only the amount links this payer to {order_id}"],
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
    return f"{from_cents(cents):,.2f}"
