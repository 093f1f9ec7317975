"""The decision policy and the hard allocation cases, at the matcher level."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ingest.records import CustomerRecord, StatementRecord
from matcher.candidates import Candidate, LineContext
from matcher.decision import guards
from matcher.pipeline import AUTO, REVIEW

from .conftest import CUSTOMERS, allocation, line, order

D = Decimal
C1_NAME = "苏州恒达机械设备有限公司"
C2_NAME = "杭州鑫源电子科技有限公司"
C2_ACCOUNT = "33001610000055556666"
C4 = "C4"


@pytest.fixture
def three_orders(company):
    customers = (*CUSTOMERS, CustomerRecord(C4, "温州嘉信五金制品有限公司"))
    return company(
        order("SO-4101", C4, "2025-06-01", "200.00"),
        order("SO-4102", C4, "2025-06-03", "150.00"),
        order("SO-4103", C4, "2025-06-05", "100.00"),
        customers=customers,
    )


def test_three_named_orders_settled_in_full(three_orders):
    memo = "SO-4101 SO-4102 SO-4103"

    result = three_orders.match(
        line("450.00", name="温州嘉信五金制品有限公司", memo=memo)
    )

    assert allocation(result) == (
        C4,
        {("SO-4101", D("200.00")), ("SO-4102", D("150.00")), ("SO-4103", D("100.00"))},
        0,
        set(),
    )


def test_three_named_orders_short_payment(three_orders):
    memo = "SO-4101 SO-4102 SO-4103"

    result = three_orders.match(
        line("400.00", name="温州嘉信五金制品有限公司", memo=memo)
    )

    assert allocation(result) == (
        C4,
        {("SO-4101", D("200.00")), ("SO-4102", D("150.00")), ("SO-4103", D("50.00"))},
        0,
        set(),
    )
    assert three_orders.index.orders["SO-4103"].open == 5000
    assert result.decision == REVIEW
    assert any("short by 50.00" in reason for reason in result.reasons)


def test_decimal_drift_settles_exactly(company):
    found = company(
        order("SO-5001", "C2", "2024-07-01", "2.50"),
        order("SO-5002", "C2", "2024-07-02", "63.45"),
        order("SO-5003", "C2", "2024-07-03", "36.48"),
    )

    result = found.match(line("102.43", name=C2_NAME, memo="SO-5001 SO-5002 SO-5003"))

    rows = [row for row in result.rows() if row["target"] == "order"]
    assert allocation(result) == (
        "C2",
        {("SO-5001", D("2.50")), ("SO-5002", D("63.45")), ("SO-5003", D("36.48"))},
        0,
        set(),
    )
    assert sum(row["amount"] for row in rows) == D("102.43")
    assert all(isinstance(row["amount"], Decimal) for row in rows)
    assert [
        found.index.orders[oid].open for oid in ("SO-5001", "SO-5002", "SO-5003")
    ] == [0, 0, 0]


def test_memo_naming_other_order_goes_to_review(company):
    result = company().match(line("8560.00", name=C1_NAME, memo="付SO-4188货款"))

    assert result.decision == REVIEW
    assert "review: memo names SO-4188, not the choice" in result.reasons


def test_amount_alone_never_auto(company):
    result = company().match(
        line("18800.00", name="李四", account="6217000011112222333", memo="转账")
    )

    assert result.decision != AUTO
    assert result.chosen.kind in ("amount_only", "none")
    assert any(c.candidate.kind == "amount_only" for c in result.ranked)


def test_repeated_payment_flagged_duplicate(company):
    found = company()
    first = line("6420.50", name=C2_NAME, account=C2_ACCOUNT, memo="货款", day=3)
    again = line("6420.50", name=C2_NAME, account=C2_ACCOUNT, memo="货款", day=8)
    found.match(first)

    result = found.match(again)

    assert "duplicate" in result.anomaly_reasons
    assert result.decision != AUTO


def test_payment_far_above_usual_flagged(company):
    found = company()
    for _ in range(5):
        found.index.learn_payer(
            customer_id="C2", name=C2_NAME, account="", amount=D("6000.00")
        )

    result = found.match(line("900000.00", name=C2_NAME, memo="货款"))

    assert result.chosen.customer_id == "C2"
    assert "unusual_amount" in result.anomaly_reasons


def _context(referenced=None, accounts=None, memo=""):
    record = StatementRecord("L1", date(2024, 11, 1), D("100.00"), "CNY", memo=memo)
    return LineContext(
        line=record,
        cents=10000,
        hits=[],
        referenced_orders=referenced or {},
        account_customers=accounts or {},
        name_matches={},
        customers=["C1"],
    )


def _codes(context, top, runner=None, top_score=5.0, runner_score=None, margin=1.0):
    return {
        g.code for g in guards(context, top, runner, top_score, runner_score, margin)
    }


def test_guard_close_call_within_margin():
    top = Candidate("exact", "C1", (("A", 10000),))
    runner = Candidate("fee_short", "C1", (("B", 10000),), fees=(("B", 500),))

    assert "close_call" in _codes(_context(), top, runner, 5.0, 4.5)
    assert "close_call" not in _codes(_context(), top, runner, 5.0, 3.5)


def test_guard_close_call_ignores_no_match():
    top = Candidate("exact", "C1", (("A", 10000),))
    runner = Candidate("none", None)

    assert "close_call" not in _codes(_context(), top, runner, 5.0, 4.9)


def test_guard_balance_needs_prepayment_memo():
    top = Candidate("balance", "C1", balance=10000)

    assert "no_order" in _codes(_context(memo="货款"), top)
    assert "no_order" not in _codes(_context(memo="预付款"), top)


def test_guard_other_payer_account():
    top = Candidate("exact", "C1", (("A", 10000),))

    assert "other_payer" in _codes(_context(accounts={"C2": 3}), top)
    assert "other_payer" not in _codes(_context(accounts={"C1": 3}), top)


def test_guard_unnamed_overpay():
    top = Candidate("overpay", "C1", (("A", 9000),), balance=1000)

    assert "unnamed_order" in _codes(_context(), top)


def test_paused_gc_restores_collector():
    import gc

    from matcher.pipeline import paused_cyclic_gc

    assert gc.isenabled()
    with paused_cyclic_gc():
        with paused_cyclic_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()

    assert gc.isenabled()


def test_paused_gc_keeps_collector_off():
    import gc

    from matcher.pipeline import paused_cyclic_gc

    gc.disable()
    try:
        with paused_cyclic_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
