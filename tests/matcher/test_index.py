from datetime import date
from decimal import Decimal

import pytest

from ingest.records import CustomerRecord, OrderRecord, StatementRecord
from matcher.index import (
    MAX_POSTINGS,
    SHAPES,
    GramIndex,
    MatchIndex,
    MatchSettings,
    MemoStats,
    RecentCredits,
)


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

    assert [o.order_id for o in index.open_by_customer["C1"]] == [
        "SO-1",
        "SO-3",
        "SO-2",
    ]


def test_add_order_twice_keeps_one_entry(index):
    index.add_order(order("SO-1", open_amount="40.00", day=1))

    assert [o.order_id for o in index.open_by_customer["C1"]] == ["SO-1", "SO-2"]
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


def test_gram_shortlist_skips_common_grams():
    grams = GramIndex(2)
    for n in range(MAX_POSTINGS + 1):
        grams.add(f"机械{n:04d}", f"C{n:04d}")
    grams.add("恒达机械", "C-HD")

    assert grams.shortlist("恒达机械") == ["C-HD"]


def test_customers_in_memo_finds_named_customer():
    index = MatchIndex.build(
        [
            CustomerRecord("C1", "苏州恒达机械设备有限公司", ("恒达机械",)),
            CustomerRecord("C2", "杭州鑫源电子科技有限公司"),
        ],
        [],
    )

    found = index.customers_in_memo("代恒达机械付货款")

    assert list(found) == ["C1"]
    assert index.customers_in_memo("货款") == {}


def test_name_cache_clears_on_new_payer():
    index = MatchIndex.build([CustomerRecord("C1", "苏州恒达机械设备有限公司")], [])
    assert index.customers_by_name("王建国") == []

    index.learn_payer(customer_id="C1", name="王建国", account="")

    assert [m.customer_id for m in index.customers_by_name("王建国")] == ["C1"]


def test_memo_stats_learn_words_of_any_vocabulary():
    stats = MemoStats()
    for _ in range(5):
        stats.learn("预交款", "balance")
        stats.learn("设备款", "order")

    odds = stats.log_odds("预交款")

    assert odds["balance"] > 1.0
    assert odds["order"] < 0.0
    assert stats.log_odds("从未见过") == dict.fromkeys(SHAPES, 0.0)


def test_memo_stats_reject_unknown_shape():
    with pytest.raises(ValueError, match="unknown allocation shape"):
        MemoStats().learn("货款", "refund")


def test_recent_credits_window():
    from datetime import timedelta

    credits = RecentCredits()
    first = StatementRecord(
        "L1", date(2024, 11, 1), Decimal("50.00"), "CNY", memo="货款"
    )
    credits.add(first)

    soon = StatementRecord(
        "L2", date(2024, 11, 8), Decimal("50.00"), "CNY", memo="货款"
    )
    late = StatementRecord(
        "L3",
        date(2024, 11, 1) + timedelta(days=30),
        Decimal("50.00"),
        "CNY",
        memo="货款",
    )

    assert credits.is_repeat(soon)
    assert not credits.is_repeat(late)


def test_fee_tolerance_matches_decimal_rule():
    settings = MatchSettings(fee_max=Decimal("50.00"), fee_rate=Decimal("0.015"))

    for cents in (1, 199, 3333, 100_000, 9_999_999):
        expected = min(5000, int(Decimal(cents) * Decimal("0.015")))
        assert settings.fee_tolerance_cents(cents) == expected


def test_open_order_keeps_deposit_shares(index):
    assert index.orders["SO-1"].shares == (3000, 5000)
