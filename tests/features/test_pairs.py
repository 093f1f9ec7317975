from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from features.pairs import (
    FEATURE_NAMES,
    candidate_matrix,
    candidate_shape,
    memo_flags,
    reads_as_advance,
    round_level,
)
from features.text import han_text, memo_tokens
from ingest.records import CustomerRecord, OrderRecord, StatementRecord
from matcher.candidates import Candidate, block, generate
from matcher.index import MatchIndex


@pytest.mark.parametrize(
    ("cents", "level"),
    [
        pytest.param(5_000_000, 6, id="fifty-thousand"),
        pytest.param(123_400, 2, id="whole-yuan"),
        pytest.param(12_345, 0, id="cents"),
        pytest.param(0, 0, id="zero"),
    ],
)
def test_round_level(cents, level):
    assert round_level(cents) == level


@pytest.mark.parametrize(
    ("memo", "flag"),
    [
        pytest.param("预付货款", "word_advance", id="advance"),
        pytest.param("预存款", "word_advance", id="advance-morpheme"),
        pytest.param("首期款", "word_deposit", id="deposit"),
        pytest.param("分期款", "word_part", id="part"),
        pytest.param("结清尾款", "word_final", id="final"),
        pytest.param("存款利息", "word_other_income", id="interest"),
        pytest.param("Advance payment", "word_advance", id="english-advance"),
        pytest.param("DEPOSIT 30 PCT", "word_deposit", id="english-deposit"),
    ],
)
def test_memo_flags(memo, flag):
    assert memo_flags(memo)[flag] == 1.0


@pytest.mark.parametrize(
    ("memo", "advance"),
    [
        pytest.param("预存款", True, id="chinese"),
        pytest.param("ADVANCE PAYMENT", True, id="english"),
        pytest.param("prepayment for Q3", True, id="english-lower-case"),
        pytest.param("DEPOSIT 30 PCT", False, id="deposit-pays-an-order"),
        pytest.param("货款", False, id="goods"),
    ],
)
def test_reads_as_advance(memo, advance):
    assert reads_as_advance(memo) is advance


def test_han_text_drops_numbers():
    assert han_text("付 XS2410-0031 货款") == "付货款"


def test_memo_tokens_with_injected_tokenizer():
    tokens = memo_tokens("付XS2410-0031货款", lambda text: [text[:1], text[1:]])

    assert tokens == ("付", "付货款", "货款")


@pytest.mark.parametrize(
    ("candidate", "shape"),
    [
        pytest.param(Candidate("none", None), "none", id="none"),
        pytest.param(Candidate("balance", "C1", balance=100), "balance", id="balance"),
        pytest.param(Candidate("exact", "C1", (("A", 100),)), "order", id="order"),
        pytest.param(
            Candidate("partial", "C1", (("A", 100),), left_open=5), "part", id="part"
        ),
        pytest.param(
            Candidate("overpay", "C1", (("A", 100),), balance=5),
            "overpay",
            id="overpay",
        ),
    ],
)
def test_candidate_shape(candidate, shape):
    assert candidate_shape(candidate) == shape


def test_candidate_matrix_one_row_per_candidate():
    index = MatchIndex.build(
        [
            CustomerRecord(
                "C1", "苏州恒达机械设备有限公司", bank_accounts=("622200001",)
            )
        ],
        [
            OrderRecord(
                "SO-1", "C1", date(2024, 10, 1), Decimal("100.00"), Decimal("100.00")
            ),
            OrderRecord(
                "SO-2", "C1", date(2024, 10, 9), Decimal("80.00"), Decimal("80.00")
            ),
        ],
    )
    line = StatementRecord(
        "L1",
        date(2024, 11, 1),
        Decimal("100.00"),
        "CNY",
        counterparty_account="622200001",
        memo="SO-1",
    )
    context = block(index, line)
    candidates = generate(index, context)

    matrix = candidate_matrix(index, context, candidates)

    assert matrix.shape == (len(candidates), len(FEATURE_NAMES))
    assert matrix.dtype == np.float32
    top = [c.kind for c in candidates].index("reference")
    assert matrix[top, FEATURE_NAMES.index("ref_strength")] == 3.0
    assert matrix[top, FEATURE_NAMES.index("account_master")] == 1.0
    assert matrix[top, FEATURE_NAMES.index("first_order_rank")] == 0.0
