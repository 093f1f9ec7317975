from datetime import date
from decimal import Decimal

import pytest

from ingest.records import CustomerRecord, OrderRecord, StatementRecord
from matcher.baseline import baseline_match
from training.case import CaseData

D = Decimal


def order(order_id, customer, open_amount, day=1, status="open"):
    return OrderRecord(
        order_id=order_id,
        customer_id=customer,
        order_date=date(2024, 10, day),
        amount=D(open_amount),
        open_amount=D(open_amount),
        status=status,
    )


def line(ref, amount, *, name="", account="", memo="", day=1):
    return StatementRecord(
        line_ref=ref,
        booking_date=date(2024, 11, day),
        amount=D(amount),
        currency="CNY",
        counterparty_name=name,
        counterparty_account=account,
        memo=memo,
    )


@pytest.fixture
def data():
    return CaseData(
        customers=[
            CustomerRecord(
                "C1", "苏州恒达机械设备有限公司", ("恒达机械",), ("6222000011112222",)
            ),
            CustomerRecord("C2", "杭州鑫源电子科技有限公司", (), ("3100999988887777",)),
        ],
        orders=[
            order("SO-4101", "C1", "200.00", day=1),
            order("SO-4102", "C1", "150.00", day=3),
            order("SO-4103", "C1", "100.00", day=5),
            order("XS2410-0031", "C2", "500.00", day=2),
            order("XS2410-0032", "C2", "500.00", day=4),
            order("XS2410-0040", "C2", "800.00", day=6),
            order("SO-4199", "C1", "999.00", status="cancelled"),
        ],
    )


def match(data, *lines):
    data.statement_lines = list(lines)
    rows = baseline_match(data)
    return [
        (r["customer_id"], r["order_id"], r["target"], r["amount"], r["decision"])
        for r in rows
    ]


def test_baseline_reference_paid_exactly_is_auto(data):
    rows = match(
        data, line("1", "150.00", account="6222000011112222", memo="SO-4102货款")
    )

    assert rows == [("C1", "SO-4102", "order", D("150.00"), "auto")]


def test_baseline_reference_part_paid_is_review(data):
    rows = match(
        data,
        line("1", "400.00", account="6222000011112222", memo="SO-4101 SO-4102 SO-4103"),
    )

    assert rows == [
        ("C1", "SO-4101", "order", D("200.00"), "review"),
        ("C1", "SO-4102", "order", D("150.00"), "review"),
        ("C1", "SO-4103", "order", D("50.00"), "review"),
    ]


def test_baseline_reference_spelling_must_be_exact(data):
    rows = match(data, line("1", "150.00", account="6222000011112222", memo="so 4102"))

    assert rows == [("C1", "SO-4102", "order", D("150.00"), "auto")]


def test_baseline_exact_name_finds_customer(data):
    rows = match(data, line("1", "800.00", name="杭州鑫源电子科技有限公司"))

    assert rows == [("C2", "XS2410-0040", "order", D("800.00"), "auto")]


def test_baseline_alias_name_is_unmatched(data):
    rows = match(data, line("1", "200.00", name="恒达机械"))

    assert rows == [("", "", "none", D("200.00"), "unmatched")]


def test_baseline_two_equal_orders_go_to_balance(data):
    rows = match(data, line("1", "500.00", account="3100999988887777"))

    assert rows == [("C2", "", "balance", D("500.00"), "review")]


def test_baseline_negative_line_is_unmatched(data):
    rows = match(data, line("1", "-200.00", account="6222000011112222"))

    assert rows == [("", "", "none", D("-200.00"), "unmatched")]


def test_baseline_cancelled_order_is_not_open(data):
    rows = match(data, line("1", "999.00", account="6222000011112222"))

    assert rows == [("C1", "", "balance", D("999.00"), "review")]


def test_baseline_books_earlier_lines_first(data):
    later = line("2", "200.00", account="6222000011112222", day=9)
    earlier = line("1", "200.00", account="6222000011112222", day=2)

    rows = match(data, later, earlier)

    assert rows == [
        ("C1", "", "balance", D("200.00"), "review"),
        ("C1", "SO-4101", "order", D("200.00"), "auto"),
    ]


def test_baseline_learns_accounts_from_history(data):
    from ingest.records import AllocationRecord

    data.history_lines = [line("H1", "10.00", account="777", day=1)]
    data.history_allocations = [AllocationRecord("H1", "C2", "", "balance", D("10.00"))]

    rows = match(data, line("1", "800.00", account="777"))

    assert rows == [("C2", "XS2410-0040", "order", D("800.00"), "auto")]
