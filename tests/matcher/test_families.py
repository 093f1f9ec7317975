"""One test per payment family, on small hand-written Chinese inputs.

Each matches lines against a three-customer company with the cold-start
model and checks the customer, the orders and the amounts exactly.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from matcher.pipeline import AUTO, UNMATCHED

from .conftest import allocation, line, order

D = Decimal
C1_NAME = "苏州恒达机械设备有限公司"
C2_NAME = "杭州鑫源电子科技有限公司"
C3_NAME = "宁波华瑞纺织品有限公司"
C1_ACCOUNT = "32050188000012345678"
C2_ACCOUNT = "33001610000055556666"


@pytest.mark.parametrize(
    "memo",
    [
        pytest.param("付XS2410-0031货款", id="as-written"),
        pytest.param("xs2410-0031", id="lower-case"),
        pytest.param("XS 2410 0031", id="spaces"),
        pytest.param("合同号XS2410/0031", id="slash"),
        pytest.param("24100031", id="no-prefix"),
        pytest.param("XS2410-31", id="no-zeros"),
        pytest.param("ＸＳ２４１０－００３１", id="full-width"),
        pytest.param("XS2410-0081 货款", id="one-typo"),
    ],
)
def test_reference_spellings_pick_named_order(company, memo):
    # An older order of the same amount would be settled first without the
    # reference, so only the memo can point at XS2410-0031.
    found = company(order("XS2410-0020", "C1", "2024-10-01", "12000.00"))

    result = found.match(line("12000.00", name=C1_NAME, account=C1_ACCOUNT, memo=memo))

    assert allocation(result) == ("C1", {("XS2410-0031", D("12000.00"))}, 0, set())


def test_reference_reason_names_order(company):
    result = company().match(line("5000.00", name=C1_NAME, memo="XS2410-0031 进度款"))

    assert allocation(result) == ("C1", {("XS2410-0031", D("5000.00"))}, 0, set())
    assert "order XS2410-0031 in memo" in result.reasons
    assert result.model_version.startswith("cold-start-")


def test_several_references_in_one_memo(company):
    memo = "XS2410-0031、XS2410-0032 货款"

    result = company().match(line("20560.00", name=C1_NAME, memo=memo))

    assert allocation(result) == (
        "C1",
        {("XS2410-0031", D("12000.00")), ("XS2410-0032", D("8560.00"))},
        0,
        set(),
    )


def test_no_reference_amount_finds_order(company):
    result = company().match(
        line("6420.50", name=C2_NAME, account=C2_ACCOUNT, memo="货款")
    )

    assert allocation(result) == ("C2", {("XS2410-0041", D("6420.50"))}, 0, set())
    assert result.decision == AUTO


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("恒达机械", id="short"),
        pytest.param("恒达机械设备(苏州)有限公司", id="brackets"),
        pytest.param("恒达机械设备（苏州）有限公司", id="full-width-brackets"),
        pytest.param("苏州衡达机械设备有限公司", id="homophone"),
        pytest.param("SUZHOU HENGDA JIXIE SHEBEI CO., LTD.", id="pinyin"),
    ],
)
def test_payer_name_variants_find_customer(company, name):
    result = company().match(line("8560.00", name=name, memo="货款"))

    assert allocation(result) == ("C1", {("XS2410-0032", D("8560.00"))}, 0, set())


def test_sister_company_named_in_memo(company):
    result = company().match(
        line(
            "8560.00",
            name="苏州恒达电子科技有限公司",
            account="32050199000077778888",
            memo="代恒达机械付货款",
        )
    )

    assert allocation(result) == ("C1", {("XS2410-0032", D("8560.00"))}, 0, set())
    assert "memo names the customer" in result.reasons


def test_representative_account_learned(company):
    found = company()
    for _ in range(2):
        found.index.learn_payer(
            customer_id="C3", name="王建国", account="6222021234567890123"
        )

    result = found.match(line("2350.00", name="王建国", account="6222021234567890123"))

    assert allocation(result) == ("C3", {("SO-4131", D("2350.00"))}, 0, set())
    assert "payer account seen in 2 earlier payments" in result.reasons


def test_learned_account_without_name(company):
    found = company()
    for _ in range(3):
        found.index.learn_payer(
            customer_id="C2", name="赵敏", account="6222 0288 7777 1234"
        )

    result = found.match(line("9990.00", account="6222028877771234", memo="付款"))

    assert allocation(result) == ("C2", {("SO-4120", D("9990.00"))}, 0, set())


def test_new_account_of_known_customer(company):
    result = company().match(
        line("9990.00", name=C2_NAME, account="6212260000001111", memo="货款")
    )

    assert allocation(result) == ("C2", {("SO-4120", D("9990.00"))}, 0, set())
    assert "new_account" in result.anomaly_reasons


def test_known_account_names_master_and_payments(company):
    found = company()
    for _ in range(3):
        found.index.learn_payer(customer_id="C1", name=C1_NAME, account=C1_ACCOUNT)

    result = found.match(line("3280.00", name=C1_NAME, account=C1_ACCOUNT))

    assert allocation(result) == ("C1", {("SO-4188", D("3280.00"))}, 0, set())
    assert "payer account in the customer master" in result.reasons
    assert "payer account seen in 3 earlier payments" in result.reasons


def test_deposit_of_order(company):
    result = company().match(line("10500.00", name=C1_NAME, memo="定金"))

    assert allocation(result) == ("C1", {("XS2409-0107", D("10500.00"))}, 0, set())
    assert "amount = deposit of XS2409-0107" in result.reasons


def test_deposit_thirty_percent_share(company):
    result = company().match(line("8190.00", name=C3_NAME, memo="首付款"))

    assert allocation(result) == ("C3", {("XS2409-0150", D("8190.00"))}, 0, set())
    assert "amount = 30 % deposit of XS2409-0150" in result.reasons


def test_instalments_then_final_balance(company):
    found = company(order("SO-3001", "C3", "2024-10-20", "240.00"))

    first = found.match(line("100.00", name=C3_NAME, memo="SO-3001 分期款", day=3))
    open_after_first = found.index.orders["SO-3001"].open
    second = found.match(line("140.00", name=C3_NAME, memo="SO-3001 尾款", day=9))

    assert allocation(first) == ("C3", {("SO-3001", D("100.00"))}, 0, set())
    assert open_after_first == 14000
    assert allocation(second) == ("C3", {("SO-3001", D("140.00"))}, 0, set())
    assert found.index.orders["SO-3001"].open == 0


@pytest.mark.parametrize(
    ("amount", "orders"),
    [
        pytest.param(
            "25220.50",
            {("XS2410-0040", "18800.00"), ("XS2410-0041", "6420.50")},
            id="2",
        ),
        pytest.param(
            "35210.50",
            {
                ("XS2410-0040", "18800.00"),
                ("XS2410-0041", "6420.50"),
                ("SO-4120", "9990.00"),
            },
            id="3",
        ),
        pytest.param(
            "38130.50",
            {
                ("XS2410-0040", "18800.00"),
                ("XS2410-0041", "6420.50"),
                ("SO-4120", "9990.00"),
                ("SO-4125", "2920.00"),
            },
            id="4",
        ),
    ],
)
def test_combination_settles_several_orders(company, amount, orders):
    found = company(order("SO-4125", "C2", "2024-08-20", "2920.00"))

    result = found.match(line(amount, name=C2_NAME, account=C2_ACCOUNT, memo="货款"))

    expected = {(order_id, D(cents)) for order_id, cents in orders}
    assert allocation(result) == ("C2", expected, 0, set())


def test_bank_fee_shortfall_within_tolerance(company):
    result = company().match(line("8545.00", name=C1_NAME, memo="XS2410-0032"))

    assert allocation(result) == (
        "C1",
        {("XS2410-0032", D("8545.00"))},
        0,
        {("XS2410-0032", D("15.00"))},
    )


def test_overpayment_goes_to_balance(company):
    result = company().match(line("9000.00", name=C1_NAME, memo="XS2410-0032 货款"))

    assert allocation(result) == (
        "C1",
        {("XS2410-0032", D("8560.00"))},
        D("440.00"),
        set(),
    )
    assert "440.00 to the prepayment balance" in result.reasons
    assert "over_advance" in result.anomaly_reasons


def test_round_advance_without_order(company):
    result = company().match(
        line("50000.00", name=C2_NAME, account=C2_ACCOUNT, memo="预付款")
    )

    assert allocation(result) == ("C2", set(), D("50000.00"), set())


def test_same_amount_orders_oldest_first(company):
    found = company(
        order("SO-4140", "C3", "2024-09-20", "5000.00"),
        order("SO-4139", "C3", "2024-09-02", "5000.00"),
    )

    result = found.match(line("5000.00", name=C3_NAME, memo="货款"))

    assert allocation(result) == ("C3", {("SO-4139", D("5000.00"))}, 0, set())
    assert "2 open orders of this amount; the oldest is settled first" in result.reasons


def test_same_amount_orders_second_payment_takes_next(company):
    found = company(
        order("SO-4140", "C3", "2024-09-20", "5000.00"),
        order("SO-4139", "C3", "2024-09-02", "5000.00"),
    )
    found.match(line("5000.00", name=C3_NAME, memo="货款", day=3, ref="L1"))

    result = found.match(
        line("5000.00", name=C3_NAME, memo="订单SO-4140", day=6, ref="L2")
    )

    assert allocation(result) == ("C3", {("SO-4140", D("5000.00"))}, 0, set())


def test_interest_income_left_unmatched(company):
    result = company().match(line("123.45", name="中国银行苏州分行", memo="存款利息"))

    assert result.decision == UNMATCHED
    assert result.rows()[0]["target"] == "none"
    assert result.rows()[0]["customer_id"] == ""
    assert result.rows()[0]["amount"] == D("123.45")


def test_money_out_is_unmatched(company):
    result = company().match(line("-15.00", memo="手续费"))

    assert result.decision == UNMATCHED
    assert result.anomaly_score == 0.0
