from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError

from ingest.records import CustomerRecord, OrderRecord, StatementRecord
from matcher.anomaly import (
    ALERTS,
    ANOMALY_FEATURES,
    NOTES,
    AnomalyScorer,
    anomaly_features,
    anomaly_reasons,
)
from matcher.candidates import Candidate, block
from matcher.index import MatchIndex


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(4)
    normal = rng.normal(size=(400, 4))
    odd = rng.normal(loc=6.0, size=(5, 4))
    return np.vstack([normal, odd])


def test_anomaly_scorer_fit_returns_self(rows):
    scorer = AnomalyScorer()

    assert scorer.fit(rows) is scorer
    assert scorer.n_features_in_ == 4


def test_anomaly_scorer_unfitted_raises(rows):
    with pytest.raises(NotFittedError):
        AnomalyScorer().score(rows)


def test_anomaly_scorer_rejects_few_rows():
    with pytest.raises(ValueError, match="at least 10 rows"):
        AnomalyScorer().fit(np.zeros((3, 2)))


def test_anomaly_scorer_rejects_wrong_width(rows):
    scorer = AnomalyScorer().fit(rows)

    with pytest.raises(ValueError, match="expected 4 anomaly features"):
        scorer.score(rows[:, :3])


def test_anomaly_scorer_scores_in_unit_range(rows):
    scores = AnomalyScorer().fit(rows).score(rows)

    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    assert scores[-5:].min() > np.median(scores[:400])


def test_anomaly_scorer_equals_isolation_forest(rows):
    scorer = AnomalyScorer(n_estimators=50, contamination=0.02, random_state=3)
    forest = IsolationForest(n_estimators=50, contamination=0.02, random_state=3)
    probe = np.random.default_rng(9).normal(scale=3.0, size=(60, 4))

    ours = scorer.fit(rows).score(probe)
    decision = forest.fit(rows).decision_function(probe)

    assert ours == pytest.approx(1.0 / (1.0 + np.exp(40.0 * decision)), abs=1e-9)


def test_anomaly_scorer_one_row_equals_batch(rows):
    scorer = AnomalyScorer().fit(rows)

    singles = [scorer.score(rows[i : i + 1])[0] for i in range(0, 400, 37)]

    assert singles == pytest.approx(list(scorer.score(rows[0:400:37])))


def test_reason_lists_are_disjoint():
    assert not set(ALERTS) & set(NOTES)


def test_anomaly_features_use_usual_amounts():
    index = MatchIndex.build([CustomerRecord("C1", "苏州恒达机械设备有限公司")], [])
    for amount in ("1000.00", "1000.00", "1000.00"):
        index.learn_payer(customer_id="C1", name="", account="", amount=Decimal(amount))
    line = StatementRecord("L1", date(2024, 11, 1), Decimal("100000.00"), "CNY")
    chosen = Candidate("balance", "C1", balance=10_000_000)

    values = dict(zip(ANOMALY_FEATURES, anomaly_features(index, line, chosen)))

    assert values["amount_vs_usual"] == pytest.approx(2.0)
    assert values["balance_share"] == pytest.approx(1.0)
    assert values["money_in"] == 1.0


def test_anomaly_features_without_history():
    index = MatchIndex.build(
        [CustomerRecord("C1", "苏州恒达机械设备有限公司")],
        [
            OrderRecord(
                "SO-1", "C1", date(2024, 10, 1), Decimal("50.00"), Decimal("50.00")
            )
        ],
    )
    line = StatementRecord("L1", date(2024, 11, 1), Decimal("50.00"), "CNY")

    values = anomaly_features(index, line, Candidate("exact", "C1", (("SO-1", 5000),)))

    assert len(values) == len(ANOMALY_FEATURES)
    assert values[ANOMALY_FEATURES.index("amount_vs_usual")] == 0.0


def test_overpayment_notes_amount_mismatch():
    index = MatchIndex.build(
        [CustomerRecord("C1", "苏州恒达机械设备有限公司")],
        [
            OrderRecord(
                "SO-1", "C1", date(2024, 10, 1), Decimal("100.00"), Decimal("100.00")
            )
        ],
    )
    line = StatementRecord(
        "L1", date(2024, 11, 1), Decimal("150.00"), "CNY", memo="SO-1"
    )
    chosen = Candidate("reference", "C1", (("SO-1", 10_000),), balance=5_000)

    reasons = anomaly_reasons(
        index, block(index, line), chosen, currency_mismatch=False
    )

    assert "amount_mismatch" in reasons


def test_exact_payment_no_amount_mismatch():
    index = MatchIndex.build(
        [CustomerRecord("C1", "苏州恒达机械设备有限公司")],
        [
            OrderRecord(
                "SO-1", "C1", date(2024, 10, 1), Decimal("100.00"), Decimal("100.00")
            )
        ],
    )
    line = StatementRecord(
        "L1", date(2024, 11, 1), Decimal("100.00"), "CNY", memo="SO-1"
    )
    chosen = Candidate("reference", "C1", (("SO-1", 10_000),))

    reasons = anomaly_reasons(
        index, block(index, line), chosen, currency_mismatch=False
    )

    assert "amount_mismatch" not in reasons
