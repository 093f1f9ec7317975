"""Features of (statement line, candidate) pairs for the ranker.

Floats are fine here: features only rank candidates, they never book money.
A row is assembled from three parts computed once each: what depends on the
line alone, what depends on the candidate's customer, and what depends on
the candidate itself.
"""

from __future__ import annotations

import math

import numpy as np

from features.text import is_person_name, normalize_account

ADVANCE_WORDS = frozenset({"预付", "预付款", "预收", "订金", "定金", "首付", "首款"})
# Cross-border payers write their memos in English; matched in upper case.
# As 定金 counts as both, an English deposit word is an advance word too.
ENGLISH_PREPAYMENT_WORDS = frozenset({"ADVANCE", "PREPAY", "PRE-PAY"})
ENGLISH_DEPOSIT_WORDS = frozenset({"DEPOSIT", "DOWN PAYMENT"})
GOODS_WORDS = frozenset(
    {"货款", "付款", "结算", "尾款", "余款", "款项", "贷款", "支付"}
)
DEPOSIT_WORDS = frozenset({"定金", "订金", "首付", "首款", "首期", "预付"})
PART_WORDS = frozenset({"分期", "进度", "部分", "阶段", "分批", "期款"})
FINAL_WORDS = frozenset({"尾款", "余款", "结清"})
OTHER_INCOME_WORDS = frozenset({"利息", "结息", "退税", "退款", "补贴", "返还", "税"})
# 预 (in advance) starts the usual Chinese words for a prepayment: 预付,
# 预存, 预交, 预缴, 预收.
ADVANCE_MORPHEME = "预"

KIND_NAMES = (
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

LINE_FEATURES = (
    "memo_refs",
    "closed_refs",
    "amount_log",
    "amount_round",
    "payer_is_person",
    "payer_empty",
    "memo_empty",
    "word_advance",
    "word_goods",
    "word_deposit",
    "word_part",
    "word_final",
    "word_other_income",
    "repeat",
    "n_customers",
    "n_candidates",
    "memo_none_odds",
    "memo_balance_odds",
)
CUSTOMER_FEATURES = (
    "account_count",
    "account_master",
    "account_other_customers",
    "name_score",
    "name_exact",
    "name_alias",
    "name_pinyin",
    "name_rank",
    "memo_names",
    "customer_rank",
    "customer_weight",
    "customer_payments",
    "customer_advance_share",
    "customer_open_orders",
    "customer_balance",
    "amount_vs_usual",
    "usual_count",
    "combination_count",
    "equal_count",
    "referenced_here",
)
CANDIDATE_FEATURES = (
    *(f"kind_{kind}" for kind in KIND_NAMES),
    "identified",
    "ref_strength",
    "ref_cover",
    "ref_support",
    "ref_other_orders",
    "n_orders",
    "balance_share",
    "balance_round",
    "fee_share",
    "fee_whole",
    "left_open_share",
    "deposit_stated",
    "oldest_age_days",
    "newest_age_days",
    "first_order_rank",
    "memo_shape_odds",
)
FEATURE_NAMES = (*CANDIDATE_FEATURES, *CUSTOMER_FEATURES, *LINE_FEATURES)
_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
_KIND_COLUMN = {kind: _COLUMN[f"kind_{kind}"] for kind in KIND_NAMES}
_CUSTOMER_COLUMNS = [_COLUMN[name] for name in CUSTOMER_FEATURES]
_ABSENT_RANK = 9.0


def memo_flags(memo: str) -> dict[str, float]:
    """Return keyword flags of a memo: advance, goods, deposit, part, final, other."""
    upper = memo.upper()

    def has(words: frozenset[str]) -> float:
        return float(any(word in upper for word in words))

    return {
        "word_advance": float(ADVANCE_MORPHEME in memo)
        or has(ADVANCE_WORDS | ENGLISH_PREPAYMENT_WORDS | ENGLISH_DEPOSIT_WORDS),
        "word_goods": has(GOODS_WORDS),
        "word_deposit": has(DEPOSIT_WORDS | ENGLISH_DEPOSIT_WORDS),
        "word_part": has(PART_WORDS),
        "word_final": has(FINAL_WORDS),
        "word_other_income": has(OTHER_INCOME_WORDS),
        "memo_empty": float(not memo.strip()),
    }


def reads_as_advance(memo: str) -> bool:
    """Tell whether a memo's own words call the money a prepayment.

    预 (in advance) starts 预付, 预存 and 预交; English memos use ADVANCE or
    PREPAYMENT.
    """
    if ADVANCE_MORPHEME in memo:
        return True
    upper = memo.upper()
    return any(word in upper for word in ENGLISH_PREPAYMENT_WORDS)


def round_level(cents: int) -> float:
    """Return how round an amount is: trailing zeros of its cents, at most 6."""
    if cents == 0:
        return 0.0
    level = 0
    cents = abs(cents)
    while cents % 10 == 0 and level < 6:
        cents //= 10
        level += 1
    return float(level)


def candidate_shape(candidate) -> str:
    """Return the allocation shape of a candidate, as the memo statistics count it."""
    kind = candidate.kind
    if kind == "none" or candidate.customer_id is None:
        return "none"
    if not candidate.orders:
        return "balance"
    if candidate.balance > 0:
        return "overpay"
    if candidate.left_open > 0:
        return "part"
    return "order"


def line_features(index, context, n_candidates: int) -> list[float]:
    """Return the features that depend on the line alone, in LINE_FEATURES order."""
    line = context.line
    values = memo_flags(line.memo)
    odds = context.memo_odds
    values.update(
        memo_refs=float(len(context.referenced_orders)),
        closed_refs=float(context.closed_references),
        amount_log=math.log10(max(abs(context.cents), 1)),
        amount_round=round_level(context.cents),
        payer_is_person=float(is_person_name(line.counterparty_name)),
        payer_empty=float(not line.counterparty_name.strip()),
        repeat=float(context.repeat),
        n_customers=float(len(context.customers)),
        n_candidates=float(n_candidates),
        memo_none_odds=odds.get("none", 0.0),
        memo_balance_odds=odds.get("balance", 0.0),
    )
    return [values[name] for name in LINE_FEATURES]


def candidate_matrix(index, context, candidates) -> np.ndarray:
    """Return a float32 matrix, one row per candidate, in FEATURE_NAMES order."""
    template = [0.0] * len(CANDIDATE_FEATURES)
    template += [0.0] * len(CUSTOMER_FEATURES)
    template += line_features(index, context, len(candidates))
    template[_COLUMN["customer_rank"]] = _ABSENT_RANK
    template[_COLUMN["name_rank"]] = _ABSENT_RANK
    template[_COLUMN["identified"]] = float(bool(context.customers))

    name_ranks = _name_ranks(context)
    by_customer: dict[str, list[float]] = {}
    rows = []
    for candidate in candidates:
        row = list(template)
        row[_KIND_COLUMN[candidate.kind]] = 1.0
        cid = candidate.customer_id
        if cid is not None:
            values = by_customer.get(cid)
            if values is None:
                values = customer_values(index, context, cid, name_ranks)
                by_customer[cid] = values
            for column, value in zip(_CUSTOMER_COLUMNS, values):
                row[column] = value
            row[_COLUMN["identified"]] = 1.0
            _fill_candidate_values(row, index, context, candidate)
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)


def _name_ranks(context) -> dict[str, int]:
    ordered = sorted(context.name_matches.values(), key=lambda m: -m.score)
    return {match.customer_id: rank for rank, match in enumerate(ordered)}


def customer_values(index, context, cid: str, name_ranks) -> list[float]:
    """Return the features of a candidate's customer, in CUSTOMER_FEATURES order."""
    values = _identity_values(index, context, cid, name_ranks)
    values.update(_habit_values(index, context, cid))
    return [values[name] for name in CUSTOMER_FEATURES]


def _identity_values(index, context, cid: str, name_ranks) -> dict[str, float]:
    count = context.account_customers.get(cid, 0)
    others = sum(1 for other in context.account_customers if other != cid)
    master = index.master_accounts.get(
        normalize_account(context.line.counterparty_account), ()
    )
    match = context.name_matches.get(cid)
    referenced_here = sum(
        1 for oid in context.referenced_orders if index.orders[oid].customer_id == cid
    )
    rank = context.customers.index(cid) if cid in context.customers else _ABSENT_RANK
    return {
        "account_count": math.log1p(count),
        "account_master": float(cid in master),
        "account_other_customers": float(others),
        "name_score": (match.score / 100.0) if match else 0.0,
        "name_exact": float(bool(match and match.exact)),
        "name_alias": float(bool(match and match.alias)),
        "name_pinyin": float(bool(match and match.pinyin)),
        "name_rank": float(name_ranks.get(cid, _ABSENT_RANK)),
        "memo_names": context.memo_customers.get(cid, 0.0) / 100.0,
        "customer_rank": float(rank),
        "customer_weight": context.customer_weights.get(cid, 0.0) / 100.0,
        "referenced_here": float(referenced_here),
    }


def _habit_values(index, context, cid: str) -> dict[str, float]:
    payments = index.payments.get(cid, 0)
    usual, usual_count = index.usual_amount(cid)
    amount_log = math.log10(max(context.cents, 1) / 100)
    return {
        "customer_payments": math.log1p(payments),
        "customer_advance_share": index.advances.get(cid, 0) / payments
        if payments
        else 0.0,
        "customer_open_orders": math.log1p(len(index.open_by_customer.get(cid, ()))),
        "customer_balance": float(index.balances.get(cid, 0) > 0),
        "amount_vs_usual": amount_log - usual if usual_count else 0.0,
        "usual_count": math.log1p(usual_count),
        "combination_count": math.log1p(context.combination_counts.get(cid, 0)),
        "equal_count": float(context.equal_counts.get(cid, 0)),
    }


_REF_STRENGTH = _COLUMN["ref_strength"]
_REF_COVER = _COLUMN["ref_cover"]
_REF_SUPPORT = _COLUMN["ref_support"]
_REF_OTHER = _COLUMN["ref_other_orders"]
_N_ORDERS = _COLUMN["n_orders"]
_BALANCE_SHARE = _COLUMN["balance_share"]
_BALANCE_ROUND = _COLUMN["balance_round"]
_FEE_SHARE = _COLUMN["fee_share"]
_FEE_WHOLE = _COLUMN["fee_whole"]
_LEFT_OPEN = _COLUMN["left_open_share"]
_SHAPE_ODDS = _COLUMN["memo_shape_odds"]
_DEPOSIT_STATED = _COLUMN["deposit_stated"]
_OLDEST = _COLUMN["oldest_age_days"]
_NEWEST = _COLUMN["newest_age_days"]
_FIRST_RANK = _COLUMN["first_order_rank"]


def _fill_candidate_values(row: list[float], index, context, candidate) -> None:
    cents = max(context.cents, 1)
    chosen = candidate.order_ids
    referenced = context.referenced_orders
    strength = support = named = 0
    for oid in chosen:
        if oid in referenced:
            named += 1
            strength = max(strength, referenced[oid])
        support = max(support, context.support_of(oid))
    fee = sum(amount for _, amount in candidate.fees)

    row[_REF_STRENGTH] = float(strength)
    row[_REF_COVER] = named / len(chosen) if chosen else 0.0
    row[_REF_SUPPORT] = float(support)
    row[_REF_OTHER] = float(len(referenced) - named)
    row[_N_ORDERS] = float(len(chosen))
    row[_BALANCE_SHARE] = candidate.balance / cents
    row[_BALANCE_ROUND] = round_level(candidate.balance)
    row[_FEE_SHARE] = fee / cents
    row[_FEE_WHOLE] = float(fee > 0 and fee % 100 == 0)
    row[_LEFT_OPEN] = candidate.left_open / cents
    row[_SHAPE_ODDS] = context.memo_odds.get(candidate_shape(candidate), 0.0)
    if candidate.kind == "deposit":
        order = index.orders.get(chosen[0])
        row[_DEPOSIT_STATED] = float(
            order is not None and order.deposit == context.cents
        )
    if chosen:
        _fill_order_values(row, index, context, candidate)
    else:
        row[_OLDEST] = row[_NEWEST] = row[_FIRST_RANK] = -1.0


def _fill_order_values(row: list[float], index, context, candidate) -> None:
    day = context.line.booking_date
    orders = index.orders
    ages = [
        (day - orders[oid].order_date).days
        for oid in candidate.order_ids
        if oid in orders
    ]
    row[_OLDEST] = float(max(ages, default=-1))
    row[_NEWEST] = float(min(ages, default=-1))
    customer_orders = index.open_by_customer.get(candidate.customer_id, ())
    first = orders.get(candidate.order_ids[0])
    # Position of the candidate's first order among the customer's open
    # orders, oldest first, as a share: 0 is the oldest.
    if first is None:
        position = len(customer_orders)
    else:
        position = customer_orders.index(first)
    row[_FIRST_RANK] = position / max(len(customer_orders), 1)
