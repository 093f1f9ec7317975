"""Features of (statement line, candidate) pairs for the ranker.

Floats are fine here: features only rank candidates, they never book money.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import lru_cache

import numpy as np

from features.text import is_person_name, jieba_tokens, normalize_account

ADVANCE_WORDS = frozenset({"预付", "预付款", "预收", "订金", "定金", "首付", "首款"})
GOODS_WORDS = frozenset({"货款", "付款", "结算", "尾款", "余款", "款项", "贷款", "支付"})
DEPOSIT_WORDS = frozenset({"定金", "订金", "首付", "首款", "预付"})
OTHER_INCOME_WORDS = frozenset({"利息", "结息", "退税", "退款", "补贴", "返还", "税"})

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

FEATURE_NAMES = (
    *(f"kind_{kind}" for kind in KIND_NAMES),
    "ref_strength",
    "ref_cover",
    "ref_other_orders",
    "memo_refs",
    "account_count",
    "account_master",
    "account_other_customers",
    "name_score",
    "name_exact",
    "name_alias",
    "name_pinyin",
    "name_rank",
    "payer_is_person",
    "payer_empty",
    "customer_payments",
    "customer_advance_share",
    "customer_open_orders",
    "n_orders",
    "balance_share",
    "fee_share",
    "amount_log",
    "oldest_age_days",
    "newest_age_days",
    "word_advance",
    "word_goods",
    "word_deposit",
    "word_other_income",
    "memo_empty",
    "n_customers",
    "n_candidates",
    "identified",
)

Tokenizer = Callable[[str], Iterable[str]]


@lru_cache(maxsize=50_000)
def _memo_words(memo: str, tokenizer: Tokenizer) -> frozenset[str]:
    return frozenset(tokenizer(memo)) if memo.strip() else frozenset()


def memo_flags(memo: str, tokenizer: Tokenizer = jieba_tokens) -> dict[str, float]:
    """Return keyword flags of a memo: advance, goods, deposit, other income."""
    words = _memo_words(memo, tokenizer)

    def has(vocabulary: frozenset[str]) -> float:
        if words & vocabulary:
            return 1.0
        return float(any(word in memo for word in vocabulary))

    return {
        "word_advance": has(ADVANCE_WORDS),
        "word_goods": has(GOODS_WORDS),
        "word_deposit": has(DEPOSIT_WORDS),
        "word_other_income": has(OTHER_INCOME_WORDS),
        "memo_empty": float(not memo.strip()),
    }


def line_features(index, context, tokenizer: Tokenizer = jieba_tokens) -> dict:
    """Return the features that depend on the line alone."""
    line = context.line
    flags = memo_flags(line.memo, tokenizer)
    flags.update(
        memo_refs=float(len(context.referenced_orders)),
        payer_is_person=float(is_person_name(line.counterparty_name)),
        payer_empty=float(not line.counterparty_name.strip()),
        amount_log=math.log10(max(abs(context.cents), 1)),
        n_customers=float(len(context.customers)),
    )
    return flags


def candidate_matrix(index, context, candidates, tokenizer: Tokenizer = jieba_tokens):
    """Return a float32 matrix, one row per candidate, in FEATURE_NAMES order."""
    base = line_features(index, context, tokenizer)
    name_ranks = _name_ranks(context)
    rows = []
    for candidate in candidates:
        values = dict(base)
        values.update(_candidate_values(index, context, candidate, name_ranks))
        values["n_candidates"] = float(len(candidates))
        rows.append([values.get(name, 0.0) for name in FEATURE_NAMES])
    return np.asarray(rows, dtype=np.float32)


def _name_ranks(context) -> dict[str, int]:
    ordered = sorted(context.name_matches.values(), key=lambda m: -m.score)
    return {match.customer_id: rank for rank, match in enumerate(ordered)}


def _candidate_values(index, context, candidate, name_ranks) -> dict[str, float]:
    values = {f"kind_{candidate.kind}": 1.0}
    cid = candidate.customer_id
    if cid is None:
        values["identified"] = float(bool(context.customers))
        return values

    values.update(_reference_values(context, candidate))
    values.update(_identity_values(index, context, cid, name_ranks))
    values.update(_amount_values(index, context, candidate))
    values["identified"] = 1.0
    return values


def _reference_values(context, candidate) -> dict[str, float]:
    referenced = context.referenced_orders
    chosen = candidate.order_ids
    strengths = [referenced[oid] for oid in chosen if oid in referenced]
    other = [oid for oid in referenced if oid not in chosen]
    return {
        "ref_strength": float(max(strengths, default=0)),
        "ref_cover": len(strengths) / len(chosen) if chosen else 0.0,
        "ref_other_orders": float(len(other)),
    }


def _identity_values(index, context, cid, name_ranks) -> dict[str, float]:
    count = context.account_customers.get(cid, 0)
    others = sum(1 for other in context.account_customers if other != cid)
    master = index.master_accounts.get(
        normalize_account(context.line.counterparty_account), ()
    )
    match = context.name_matches.get(cid)
    payments = index.payments.get(cid, 0)
    return {
        "account_count": math.log1p(count),
        "account_master": float(cid in master),
        "account_other_customers": float(others),
        "name_score": (match.score / 100.0) if match else 0.0,
        "name_exact": float(bool(match and match.exact)),
        "name_alias": float(bool(match and match.alias)),
        "name_pinyin": float(bool(match and match.pinyin)),
        "name_rank": float(name_ranks.get(cid, 9)),
        "customer_payments": math.log1p(payments),
        "customer_advance_share": index.advances.get(cid, 0) / payments
        if payments
        else 0.0,
        "customer_open_orders": math.log1p(len(index.open_by_customer.get(cid, ()))),
    }


def _amount_values(index, context, candidate) -> dict[str, float]:
    cents = max(context.cents, 1)
    fee = sum(amount for _, amount in candidate.fees)
    ages = [
        (context.line.booking_date - index.orders[oid].order_date).days
        for oid in candidate.order_ids
        if oid in index.orders
    ]
    return {
        "n_orders": float(len(candidate.orders)),
        "balance_share": candidate.balance / cents,
        "fee_share": fee / cents,
        "oldest_age_days": float(max(ages, default=-1)),
        "newest_age_days": float(min(ages, default=-1)),
    }
