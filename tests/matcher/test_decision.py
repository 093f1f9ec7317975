import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from features.pairs import FEATURE_NAMES
from matcher.decision import (
    ConfidenceCalibrator,
    choose_threshold,
    identity_level,
    line_summary,
)


@pytest.fixture(scope="module")
def summaries():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 6))
    y = (X[:, 0] + 0.3 * rng.normal(size=500) > -1.0).astype(int)
    return X, y


def test_calibrator_fit_returns_self(summaries):
    X, y = summaries
    calibrator = ConfidenceCalibrator()

    assert calibrator.fit(X, y) is calibrator


def test_calibrator_unfitted_raises(summaries):
    X, _ = summaries

    with pytest.raises(NotFittedError):
        ConfidenceCalibrator().predict_proba_right(X)


def test_calibrator_needs_both_outcomes():
    with pytest.raises(ValueError, match="right and wrong"):
        ConfidenceCalibrator().fit(np.zeros((20, 3)), np.ones(20, dtype=int))


def test_calibrator_one_line_equals_batch(summaries):
    X, y = summaries
    calibrator = ConfidenceCalibrator().fit(X, y)

    batch = calibrator.predict_proba_right(X[:25])
    single = [calibrator.probability(list(row)) for row in X[:25]]

    assert single == pytest.approx(list(batch))


def test_calibrator_orders_by_evidence(summaries):
    X, y = summaries
    calibrator = ConfidenceCalibrator().fit(X, y)
    low, high = X[:1].copy(), X[:1].copy()
    low[0, 0], high[0, 0] = -3.0, 3.0

    assert (
        calibrator.predict_proba_right(high)[0] > calibrator.predict_proba_right(low)[0]
    )


@pytest.mark.parametrize(
    ("right", "target", "threshold"),
    [
        pytest.param([1, 1, 1, 1, 0, 1], 0.99, 0.7, id="cut-above-error"),
        pytest.param([1, 1, 1, 1, 0, 1], 0.8, 0.5, id="loose-target"),
        pytest.param([0, 1, 1, 1, 1, 1], 0.99, 1.01, id="never"),
    ],
)
def test_choose_threshold_meets_target(right, target, threshold):
    confidence = np.array([0.99, 0.95, 0.9, 0.7, 0.6, 0.5])

    found = choose_threshold(confidence, np.array(right), target_precision=target)

    assert found == pytest.approx(threshold)


def test_line_summary_length_is_fixed():
    matrix = np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32)
    kinds = ["exact", "balance", "none"]

    first = line_summary(np.array([2.0, 0.5, -1.0]), kinds, matrix)
    second = line_summary(np.array([0.1, 0.5]), kinds[:2], matrix[:2])

    assert len(first) == len(second)
    assert first[1] == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("values", "level"),
    [
        pytest.param({"ref_strength": 3.0}, 3, id="reference"),
        pytest.param({"account_count": 0.7}, 3, id="account"),
        pytest.param({"name_exact": 1.0, "name_score": 1.0}, 2, id="exact-name"),
        pytest.param({"memo_names": 0.9}, 2, id="memo"),
        pytest.param({"name_score": 0.8}, 1, id="similar-name"),
        pytest.param({"ref_strength": 1.0}, 0, id="typo-only"),
    ],
)
def test_identity_level_of_row(values, level):
    row = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    for name, value in values.items():
        row[FEATURE_NAMES.index(name)] = value

    assert identity_level(row) == level
