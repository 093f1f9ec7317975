"""Splitting labelled lines by time, evaluating models, comparing them."""

from __future__ import annotations

import json
import pickle
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest

from ingest.records import AllocationRecord, StatementRecord
from models.errors import ModelNotReady
from training.case import match_index
from training.dataset import Example
from training.evaluation import (
    Evaluation,
    calibration_bins,
    compare,
    evaluate_model,
    evaluation_start,
    required_labels,
    split_by_time,
    write_calibration,
)
from training.labels import LabelledLine, labels_from_case
from training.learning import LearningSettings, repeat_hard_negatives, run_learning
from training.metrics import KindMetrics, Metrics, Rate
from training.synthetic import generate_case

START = date(2025, 3, 1)


def _lines(days: list[int]) -> list[LabelledLine]:
    return [
        LabelledLine(
            record=StatementRecord(
                f"L{i:03d}", START + timedelta(days=day), Decimal("10.00"), "CNY"
            ),
            truth=[],
            source="test",
        )
        for i, day in enumerate(days)
    ]


def test_split_by_time_keeps_days_together():
    lines = _lines([0] * 40 + [1] * 5 + [2] * 5 + [3] * 10)

    split = split_by_time(lines, eval_share=0.2)

    assert split.eval_from == START + timedelta(days=2)
    assert len(split.train) == 45
    assert len(split.test) == 15
    assert max(line.record.booking_date for line in split.train) < split.eval_from


def test_split_by_time_given_start():
    lines = _lines(list(range(60)))

    split = split_by_time(lines, eval_from=START + timedelta(days=40))

    assert len(split.train) == 40
    assert len(split.test) == 20
    assert split.window()["eval_from"] == "2025-04-10"


@pytest.mark.parametrize(
    ("days", "eval_from", "message"),
    [
        pytest.param(list(range(35)), None, "leaves 28 to train on", id="too-few"),
        pytest.param(
            list(range(60)), START + timedelta(days=55), "5 to evaluate on", id="late"
        ),
        pytest.param([0] * 60, None, "0 to train on", id="one-day"),
    ],
)
def test_split_by_time_too_few(days, eval_from, message):
    with pytest.raises(ModelNotReady, match=message):
        split_by_time(_lines(days), eval_from=eval_from)


@pytest.mark.parametrize(
    ("min_labels", "share", "needed"),
    [
        pytest.param(30, 0.2, 50, id="default"),
        pytest.param(200, 0.2, 200, id="setting-wins"),
        pytest.param(1, 0.5, 60, id="half"),
        pytest.param(1, 0.05, 200, id="small-share"),
    ],
)
def test_required_labels(min_labels, share, needed):
    assert required_labels(min_labels, share) == needed


def _evaluation(version, *, lines=100, right=90, auto=80, auto_right=79):
    overall = KindMetrics(lines=lines, right=right, auto=auto, auto_right=auto_right)
    return Evaluation(
        model_version=version,
        metrics=Metrics(
            overall=overall, duplicates=Rate(0, 0), false_alarms=Rate(0, 0)
        ),
        top1=Rate(right, lines),
        by_channel={},
        confidence=np.zeros(lines),
        right=np.zeros(lines, dtype=bool),
        auto=np.zeros(lines, dtype=bool),
    )


@pytest.mark.parametrize(
    ("new", "beats", "reason"),
    [
        pytest.param(
            _evaluation("new", right=91), True, "0.910 against 0.900", id="more-right"
        ),
        pytest.param(
            _evaluation("new", auto=85, auto_right=84),
            True,
            "automation",
            id="more-auto",
        ),
        pytest.param(_evaluation("new"), False, "no gain", id="same"),
        pytest.param(_evaluation("new", right=89), False, "no gain", id="fewer-right"),
        pytest.param(
            _evaluation("new", right=95, auto=80, auto_right=70),
            False,
            "below 0.988",
            id="imprecise",
        ),
    ],
)
def test_compare(new, beats, reason):
    old = _evaluation("old")

    found, why = compare(new, old, target_precision=0.995)

    assert found is beats
    assert reason in why


def test_compare_without_serving_model():
    assert compare(_evaluation("new"), None, target_precision=0.995) == (
        True,
        "no serving model to compare with",
    )


def test_compare_refuses_other_lines():
    with pytest.raises(ValueError, match="same lines"):
        compare(_evaluation("a"), _evaluation("b", lines=99), target_precision=0.995)


def test_repeat_hard_negatives_repeats_corrected():
    examples = [
        Example(
            "A", START, np.zeros((2, 1)), np.array([1, 0]), ["x", "none"], "C1", []
        ),
        Example(
            "B", START, np.zeros((2, 1)), np.array([1, 0]), ["x", "none"], "C1", []
        ),
    ]

    weighted = repeat_hard_negatives(examples, {"B"}, 3)

    assert [e.line_ref for e in weighted] == ["A", "B", "B", "B"]
    with pytest.raises(ValueError, match="at least 1"):
        repeat_hard_negatives(examples, {"B"}, 0)


def test_calibration_bins_cover_every_line():
    evaluation = _evaluation("m", lines=4)
    evaluation.confidence = np.array([0.05, 0.55, 0.58, 1.0])
    evaluation.right = np.array([False, True, False, True])

    bins = calibration_bins(evaluation)

    assert sum(b["lines"] for b in bins) == 4
    assert bins[5]["share_right"] == 0.5
    assert bins[9]["lines"] == 1
    assert bins[3]["mean_confidence"] is None


def test_write_calibration_files(tmp_path):
    evaluation = _evaluation("m", lines=3)
    evaluation.confidence = np.array([0.2, 0.6, 0.9])
    evaluation.right = np.array([False, True, True])

    plot, table = write_calibration(evaluation, tmp_path)

    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads(table.read_text())) == 10


@pytest.fixture(scope="module")
def small_case():
    return generate_case(
        seed=4, customers=15, open_orders=150, lines=0, history_lines=220
    )


def test_evaluation_start_holds_back_later_orders(small_case):
    labels = labels_from_case(small_case.data)
    split = split_by_time(labels.lines)
    index = match_index(labels.case_data(split.train))
    orders = labels.case_data(split.train).orders

    start = evaluation_start(index, orders, split.eval_from)

    held = {order.order_id for order in start.pending}
    restored = pickle.loads(start.index)
    assert held
    assert all(order.order_date >= split.eval_from for order in start.pending)
    assert not held & set(restored.orders)


def test_run_learning_evaluates_both_models(small_case, shared_cold_start):
    from training.cold_start import cold_start_model

    labels = labels_from_case(small_case.data)
    serving = cold_start_model(shared_cold_start)

    run = run_learning(labels, LearningSettings(), serving=serving)

    assert run.evaluation.lines == len(run.split.test)
    assert run.serving.lines == run.evaluation.lines
    assert run.serving.model_version == serving.version
    assert 0.0 <= run.evaluation.top1.value <= 1.0
    assert run.evaluation.accuracy.value >= 0.8
    summary = run.evaluation.summary()
    assert summary["lines"] == len(run.split.test)
    assert any(key.startswith("kind_order") for key in summary)
    assert any(key.startswith("channel_") for key in summary)
    assert run.reason


def test_evaluate_model_no_match_truth(small_case, shared_cold_start):
    from training.cold_start import cold_start_model

    labels = labels_from_case(small_case.data)
    split = split_by_time(labels.lines)
    data = labels.case_data(split.train)
    start = evaluation_start(match_index(data), data.orders, split.eval_from)
    stranger = LabelledLine(
        record=StatementRecord(
            "X1",
            split.eval_from,
            Decimal("12.34"),
            "CNY",
            counterparty_name="无关公司",
            memo="利息",
        ),
        truth=[],
        source="test",
    )

    evaluation = evaluate_model(cold_start_model(shared_cold_start), start, [stranger])

    assert evaluation.lines == 1
    assert evaluation.top1.hits == 1
    assert evaluation.accuracy.hits == 1


def test_labelled_line_truth_rows_of_balance():
    line = LabelledLine(
        record=StatementRecord("B1", START, Decimal("50.00"), "CNY"),
        truth=[AllocationRecord("B1", "C1", "", "balance", Decimal("50.00"))],
        source="test",
    )

    assert line.truth_rows() == [
        {
            "line_ref": "B1",
            "customer_id": "C1",
            "order_id": "",
            "target": "balance",
            "amount": Decimal("50.00"),
        }
    ]
    assert line.kind == "balance"
