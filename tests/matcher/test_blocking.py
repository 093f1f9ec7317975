from datetime import date
from decimal import Decimal

from ingest.records import CustomerRecord, OrderRecord, StatementRecord
from matcher.candidates import block, generate
from matcher.index import MatchIndex


def _index(customers: int = 6) -> MatchIndex:
    records = [
        CustomerRecord(
            f"C{i}", f"苏州客户{i}机械有限公司", bank_accounts=(f"62220000{i}",)
        )
        for i in range(1, customers + 1)
    ]
    # Neighbouring numbers belong to different customers, so a typo in one
    # number lands on other customers' orders.
    orders = [
        OrderRecord(
            order_id=f"XS2410-00{n:02d}",
            customer_id=f"C{1 + n % customers}",
            order_date=date(2024, 10, 1 + n % 20),
            amount=Decimal("1000.00"),
            open_amount=Decimal("1000.00"),
        )
        for n in range(1, 60)
    ]
    return MatchIndex.build(records, orders)


def _line(memo: str, account: str, amount: str = "1000.00") -> StatementRecord:
    return StatementRecord(
        line_ref="1",
        booking_date=date(2024, 11, 1),
        amount=Decimal(amount),
        currency="CNY",
        counterparty_account=account,
        memo=memo,
    )


def test_block_keeps_account_customer_over_typo_hits():
    index = _index()
    owner = index.orders["XS2410-0013"].customer_id

    context = block(index, _line("XS2410-0O13x XS2410-0019", "62220000" + owner[1:]))

    assert context.customers[0] == owner


def test_block_typo_reference_with_known_account():
    index = _index()
    owner = index.orders["XS2410-0013"].customer_id

    context = block(index, _line("付XS2410-00133货款", "62220000" + owner[1:]))
    candidates = generate(index, context)

    assert owner in context.customers
    assert any(c.order_ids == ("XS2410-0013",) for c in candidates)


def test_reference_candidate_takes_only_named_order():
    index = _index()
    owner = index.orders["XS2410-0013"].customer_id

    context = block(index, _line("XS2410-0013", "62220000" + owner[1:], "400.00"))
    candidates = [c for c in generate(index, context) if c.kind == "reference"]

    assert [c.orders for c in candidates] == [(("XS2410-0013", 40000),)]
