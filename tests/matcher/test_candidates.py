from datetime import date, timedelta
from decimal import Decimal

import pytest

from ingest.records import CustomerRecord, OrderRecord, StatementRecord
from matcher.candidates import Candidate, block, first_pass, generate
from matcher.index import MatchIndex, MatchSettings

NAME = "苏州恒达机械设备有限公司"


def _index(
    amounts: dict[str, str], settings: MatchSettings | None = None
) -> MatchIndex:
    orders = [
        OrderRecord(
            order_id,
            "C1",
            date(2024, 6, 1) + timedelta(days=i),
            Decimal(amount),
            Decimal(amount),
        )
        for i, (order_id, amount) in enumerate(amounts.items())
    ]
    return MatchIndex.build([CustomerRecord("C1", NAME)], orders, settings=settings)


def _candidates(index: MatchIndex, amount: str, memo: str = "") -> list[Candidate]:
    line = StatementRecord(
        "L1",
        date(2024, 11, 5),
        Decimal(amount),
        "CNY",
        counterparty_name=NAME,
        memo=memo,
    )
    return generate(index, block(index, line))


def _bookings(candidates, kind):
    return [sorted(c.order_ids) for c in candidates if c.kind == kind]


@pytest.mark.parametrize(
    ("amount", "orders"),
    [
        pytest.param("300.00", ["A", "B"], id="two"),
        pytest.param("1000.00", ["A", "C", "D"], id="three"),
        pytest.param("8800.00", ["A", "B", "D", "E"], id="four"),
    ],
)
def test_combination_finds_exact_sets(amount, orders):
    index = _index(
        {"A": "100.00", "B": "200.00", "C": "400.00", "D": "500.00", "E": "8000.00"}
    )

    combos = _bookings(_candidates(index, amount), "combination")

    assert orders in combos


def test_combination_prefers_oldest_set():
    index = _index({"A": "100.00", "B": "100.00", "C": "200.00"})

    combos = _bookings(_candidates(index, "300.00"), "combination")

    assert combos[0] == ["A", "C"]


def test_combination_none_beyond_four_orders():
    index = _index({f"O{i}": "100.00" for i in range(6)})

    combos = _bookings(_candidates(index, "500.00"), "combination")

    assert combos == []


def test_combination_cache_follows_bookings():
    index = _index({"A": "100.00", "B": "200.00", "C": "250.00"})
    assert ["A", "B"] in _bookings(_candidates(index, "300.00"), "combination")

    index.reduce_open("B", 15000)

    combos = _bookings(_candidates(index, "300.00"), "combination")
    assert ["A", "B"] not in combos
    assert ["B", "C"] in combos


def test_exact_takes_oldest_equal_order():
    index = _index({"OLD": "500.00", "NEW": "500.00"})

    exact = [c for c in _candidates(index, "500.00") if c.kind == "exact"]

    assert [c.order_ids for c in exact] == [("OLD",)]
    assert (
        "2 open orders of this amount; the oldest is settled first" in exact[0].reasons
    )


def test_named_equal_order_beats_oldest():
    index = _index({"SO-7701": "500.00", "SO-7702": "500.00"})

    booked = {c.order_ids for c in _candidates(index, "500.00", "SO-7702") if c.orders}

    assert ("SO-7702",) in booked
    assert ("SO-7701",) not in booked


def test_equal_orders_give_one_partial():
    index = _index({"A": "900.00", "B": "900.00", "C": "700.00"})

    partial = _bookings(_candidates(index, "300.00"), "partial")

    assert partial == [["A"], ["C"]]


def test_fee_short_within_tolerance_only():
    index = _index({"A": "1000.00", "B": "10000.00"})

    found = _candidates(index, "9960.00")

    assert [c.order_ids for c in found if c.kind == "fee_short"] == [("B",)]
    assert [c.fees for c in found if c.kind == "fee_short"] == [(("B", 4000),)]


def test_deposit_shares_and_deposit_field():
    index = _index({"A": "10000.00", "B": "7000.00"})

    found = _candidates(index, "3000.00")

    reasons = [c.reasons[0] for c in found if c.kind == "deposit"]
    assert reasons == ["amount = 30 % deposit of A"]


def test_reference_short_of_several_orders():
    index = _index({"SO-7801": "200.00", "SO-7802": "150.00", "SO-7803": "100.00"})

    (reference,) = [
        c
        for c in _candidates(index, "400.00", "SO-7801 SO-7802 SO-7803")
        if c.kind == "reference"
    ]

    assert reference.orders == (
        ("SO-7801", 20000),
        ("SO-7802", 15000),
        ("SO-7803", 5000),
    )
    assert reference.left_open == 5000
    assert "SO-7803 stays open by 50.00" in reference.reasons


def test_unknown_payer_gets_amount_only():
    index = _index({"A": "321.00"})
    line = StatementRecord(
        "L1", date(2024, 11, 5), Decimal("321.00"), "CNY", counterparty_name="李四"
    )

    found = generate(index, block(index, line))

    assert [(c.kind, c.order_ids) for c in found] == [
        ("amount_only", ("A",)),
        ("none", ()),
    ]


def test_first_pass_keeps_best_and_none():
    found = [Candidate("partial", "C1", prior=float(i)) for i in range(10)]
    found.append(Candidate("none", None, prior=100.0))

    kept = first_pass(found, 4)

    assert [c.prior for c in kept] == [7.0, 8.0, 9.0, 100.0]


def test_generate_caps_candidates():
    index = _index(
        {f"O{i}": f"{100 + i}.00" for i in range(40)}, MatchSettings(max_candidates=5)
    )

    found = _candidates(index, "5000.00")

    assert len(found) == 5
    assert found[-1].kind == "none"
