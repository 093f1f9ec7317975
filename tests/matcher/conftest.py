"""A small Chinese company and the cold-start model, for matcher tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest

from ingest.records import CustomerRecord, OrderRecord, StatementRecord
from matcher.index import MatchIndex
from matcher.pipeline import Matcher
from training.cold_start import cold_start_model, default_cache_dir

D = Decimal

CUSTOMERS = (
    CustomerRecord(
        "C1", "苏州恒达机械设备有限公司", ("恒达机械",), ("32050188000012345678",)
    ),
    CustomerRecord("C2", "杭州鑫源电子科技有限公司", (), ("33001610000055556666",)),
    CustomerRecord("C3", "宁波华瑞纺织品有限公司", ("华瑞纺织",), ()),
)


def order(
    order_id: str,
    customer: str,
    day: str,
    amount: str,
    *,
    open_amount: str | None = None,
    deposit: str | None = None,
) -> OrderRecord:
    """Return an open order dated `day` (YYYY-MM-DD)."""
    return OrderRecord(
        order_id=order_id,
        customer_id=customer,
        order_date=date.fromisoformat(day),
        amount=D(amount),
        open_amount=D(open_amount or amount),
        deposit_amount=None if deposit is None else D(deposit),
        status="open" if open_amount is None else "partly_paid",
    )


ORDERS = (
    order("XS2410-0031", "C1", "2024-10-08", "12000.00"),
    order("XS2410-0032", "C1", "2024-10-12", "8560.00"),
    order("XS2409-0107", "C1", "2024-09-20", "35000.00", deposit="10500.00"),
    order("SO-4188", "C1", "2024-09-01", "3280.00"),
    order("XS2410-0040", "C2", "2024-10-02", "18800.00"),
    order("XS2410-0041", "C2", "2024-10-03", "6420.50"),
    order("SO-4120", "C2", "2024-08-15", "9990.00"),
    order("SO-4130", "C3", "2024-09-10", "4700.00"),
    order("SO-4131", "C3", "2024-09-18", "2350.00"),
    order("XS2409-0150", "C3", "2024-09-25", "27300.00"),
)


def line(
    amount: str,
    *,
    name: str = "",
    account: str = "",
    memo: str = "",
    day: int = 5,
    ref: str = "L1",
) -> StatementRecord:
    """Return a statement line of 2024-11-`day`."""
    return StatementRecord(
        line_ref=ref,
        booking_date=date(2024, 11, day),
        amount=D(amount),
        currency="CNY",
        counterparty_name=name,
        counterparty_account=account,
        memo=memo,
    )


@dataclass
class Company:
    """An index over the test company and a matcher with the cold-start model."""

    index: MatchIndex
    matcher: Matcher
    extra: list = field(default_factory=list)

    def match(self, *lines: StatementRecord):
        """Match lines one by one, booking each; return the last result."""
        result = None
        for statement_line in lines:
            result = self.matcher.match(statement_line)
        return result


def allocation(result) -> tuple:
    """Return (customer, {(order, amount)}, balance, {(order, fee)}) of a result."""
    rows = result.rows()
    customer = rows[0]["customer_id"]
    orders = {(r["order_id"], r["amount"]) for r in rows if r["target"] == "order"}
    balance = sum((r["amount"] for r in rows if r["target"] == "balance"), D("0"))
    fees = {(r["order_id"], r["amount"]) for r in rows if r["target"] == "fee"}
    return customer, orders, balance, fees


@pytest.fixture(scope="session")
def cold_model():
    """Return the cold-start model, trained once per test run."""
    return cold_start_model(default_cache_dir())


@pytest.fixture
def company(cold_model):
    """Return a factory of companies: the base one plus any extra orders."""

    def build(*extra: OrderRecord, customers=CUSTOMERS) -> Company:
        index = MatchIndex.build(customers, (*ORDERS, *extra))
        return Company(index, Matcher(index, cold_model), list(extra))

    return build
