from datetime import date
from decimal import Decimal

import pytest

from ingest.records import CustomerRecord, OrderRecord
from matcher.index import MatchIndex


def order(order_id, open_amount="100.00", day=1, status="open", customer="C1"):
    return OrderRecord(
        order_id=order_id,
        customer_id=customer,
        order_date=date(2024, 10, day),
        amount=Decimal("100.00"),
        open_amount=Decimal(open_amount),
        status=status,
    )


@pytest.fixture
def index():
    return MatchIndex.build(
        [CustomerRecord("C1", "苏州恒达机械设备有限公司")],
        [order("SO-2", day=5), order("SO-1", day=1)],
    )


def test_add_order_keeps_oldest_first(index):
    index.add_order(order("SO-3", day=3))

    assert index.open_by_customer["C1"] == ["SO-1", "SO-3", "SO-2"]


def test_add_order_twice_keeps_one_entry(index):
    index.add_order(order("SO-1", open_amount="40.00", day=1))

    assert index.open_by_customer["C1"] == ["SO-1", "SO-2"]
    assert index.orders["SO-1"].open == 4000
    assert "SO-1" not in index.amount_index[10000]


def test_reduce_open_moves_amount_index(index):
    index.reduce_open("SO-1", 3000)

    assert index.orders["SO-1"].open == 7000
    assert "SO-1" in index.amount_index[7000]
    assert "SO-1" not in index.amount_index[10000]


def test_reset_open_takes_export_amounts(index):
    index.reduce_open("SO-1", 10000)

    index.reset_open(
        [
            order("SO-1", open_amount="25.00", status="partly_paid"),
            order("SO-2", open_amount="0.00", status="paid", day=5),
            order("SO-4", day=7),
        ]
    )

    assert [o.order_id for o in index.open_orders("C1")] == ["SO-1", "SO-4"]
    assert index.orders["SO-1"].open == 2500
    assert "SO-2" not in index.amount_index[10000]


@pytest.mark.parametrize(
    "status",
    [pytest.param("cancelled", id="cancelled"), pytest.param("CLOSED", id="closed")],
)
def test_add_order_skips_closed_statuses(index, status):
    index.add_order(order("SO-9", status=status))

    assert "SO-9" not in index.orders


def test_customers_by_name_stable_ties():
    marks = "甲乙丙丁戊己庚辛壬癸"
    records = [
        CustomerRecord(f"C{n:02d}", f"恒达机械{marks[n // 10]}{marks[n % 10]}有限公司")
        for n in range(40)
    ]
    forward = MatchIndex.build(records, [])
    backward = MatchIndex.build(list(reversed(records)), [])

    found = [m.customer_id for m in forward.customers_by_name("恒达机械")]

    assert found == ["C00", "C01", "C02", "C03", "C04"]
    assert [m.customer_id for m in backward.customers_by_name("恒达机械")] == found
