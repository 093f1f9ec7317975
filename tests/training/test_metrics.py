import math
from decimal import Decimal

import pytest

from ingest.records import AllocationRecord
from training.metrics import evaluate, wilson_interval


def row(line_ref, customer="", order="", target="order", amount="100.00", **extra):
    values = {
        "line_ref": line_ref,
        "customer_id": customer,
        "order_id": order,
        "target": target,
        "amount": Decimal(amount),
        "decision": "auto",
        "anomaly_score": 0.0,
        "anomaly_reasons": "",
    }
    values.update(extra)
    return values


def truth(line_ref, customer="", order="", target="order", amount="100.00"):
    return AllocationRecord(line_ref, customer, order, target, Decimal(amount))


@pytest.mark.parametrize(
    ("hits", "total", "low", "high"),
    [
        pytest.param(95, 100, 0.8882, 0.9785, id="95-of-100"),
        pytest.param(10, 10, 0.7225, 1.0, id="all-right"),
        pytest.param(0, 20, 0.0, 0.1611, id="none-right"),
    ],
)
def test_wilson_interval_known_values(hits, total, low, high):
    found = wilson_interval(hits, total)

    assert found[0] == pytest.approx(low, abs=1e-4)
    assert found[1] == pytest.approx(high, abs=1e-4)


def test_wilson_interval_of_nothing_is_nan():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_evaluate_accuracy_and_automation():
    predicted = [
        row("a", "C1", "SO-1"),
        row("b", "C1", "SO-2", decision="review"),
        row("c", "C2", "SO-3"),
        row("d", target="none", decision="unmatched"),
    ]
    true_rows = [
        truth("a", "C1", "SO-1"),
        truth("b", "C1", "SO-2"),
        truth("c", "C2", "SO-4"),
        truth("d", target="none"),
    ]

    metrics = evaluate(predicted, true_rows)

    assert metrics.lines == 4
    assert metrics.accuracy.hits == 3
    assert metrics.automation.hits == 2
    assert (metrics.precision.hits, metrics.precision.total) == (1, 2)
    assert metrics.wrong == ["c"]


def test_evaluate_amounts_and_balance_must_match():
    predicted = [
        row("a", "C1", "SO-1", amount="60.00"),
        row("a", "C1", "", target="balance", amount="40.00"),
    ]

    same = evaluate(
        predicted,
        [
            truth("a", "C1", "SO-1", amount="60"),
            truth("a", "C1", "", target="balance", amount="40"),
        ],
    )
    other = evaluate(predicted, [truth("a", "C1", "SO-1", amount="100.00")])

    assert same.accuracy.hits == 1
    assert other.accuracy.hits == 0


def test_evaluate_ignores_fee_rows():
    predicted = [row("a", "C1", "SO-1", amount="990.00")]
    true_rows = [
        truth("a", "C1", "SO-1", amount="990.00"),
        truth("a", "C1", "SO-1", target="fee", amount="10.00"),
    ]

    assert evaluate(predicted, true_rows).accuracy.hits == 1


def test_evaluate_missing_line_is_wrong():
    metrics = evaluate([], [truth("a", "C1", "SO-1")])

    assert metrics.accuracy.hits == 0
    assert metrics.automation.hits == 0


def test_evaluate_duplicates_and_false_alarms():
    predicted = [
        row("a", "C1", "SO-1"),
        row("b", "C1", "", target="balance", anomaly_reasons="duplicate"),
        row("c", "C2", "SO-2", anomaly_score=0.7),
        row("d", "C2", "SO-3", anomaly_reasons="new_account|amount_mismatch"),
    ]
    true_rows = [
        truth("a", "C1", "SO-1"),
        truth("b", "C1", "", target="balance"),
        truth("c", "C2", "SO-2"),
        truth("d", "C2", "SO-3"),
    ]

    metrics = evaluate(predicted, true_rows, anomalies={"b": ["duplicate"]})

    assert (metrics.duplicates.hits, metrics.duplicates.total) == (1, 1)
    assert (metrics.false_alarms.hits, metrics.false_alarms.total) == (1, 3)


def test_evaluate_by_kind():
    predicted = [row("a", "C1", "SO-1"), row("b", "C1", "SO-9")]
    true_rows = [truth("a", "C1", "SO-1"), truth("b", "C1", "SO-2")]

    metrics = evaluate(predicted, true_rows, kinds={"a": "reference", "b": "fee"})

    assert metrics.by_kind["reference"].accuracy.hits == 1
    assert metrics.by_kind["fee"].accuracy.hits == 0
    assert metrics.by_kind["fee"].precision.total == 1


def test_evaluate_headline_names_each_figure():
    metrics = evaluate([row("a", "C1", "SO-1")], [truth("a", "C1", "SO-1")])

    headline = metrics.headline()

    assert "allocation accuracy 100.0 %" in headline
    assert "automation 100.0 %" in headline
    assert "95 % CI" in headline


def test_evaluate_anomaly_figures_per_alert():
    predicted = [
        row("a", "C1", "", target="balance", anomaly_reasons="duplicate"),
        row("b", "C1", "SO-1", anomaly_score=0.9),
        row("c", "C2", "SO-2", anomaly_reasons="over_advance"),
        row("d", "C2", "SO-3", anomaly_score=0.8),
        row("e", "C2", "SO-4"),
    ]
    true_rows = [
        truth("a", "C1", "", target="balance"),
        truth("b", "C1", "SO-1"),
        truth("c", "C2", "SO-2"),
        truth("d", "C2", "SO-3"),
        truth("e", "C2", "SO-4"),
    ]
    anomalies = {"a": ["duplicate"], "b": ["unusual_amount"]}

    found = evaluate(predicted, true_rows, anomalies=anomalies).anomalies

    assert (found.recall["duplicate"].hits, found.recall["duplicate"].total) == (1, 1)
    assert (found.recall["unusual_amount"].hits, found.named["unusual_amount"].hits) == (1, 0)
    assert found.false_alarms["over_advance"].hits == 1
    assert found.false_alarms["score"].hits == 1
    assert found.false_alarms["score"].total == 3
