"""Replay and training in worker processes give what one process gives."""

import numpy as np
import pytest

from service.train import PreparedTraining, learn
from training.case import replay_history, train_from_history
from training.dataset import PARALLEL_MIN_LINES, parallel_workers
from training.labels import labels_from_case
from training.learning import LearningSettings
from training.synthetic import generate_case
from training.train import train_model

SMALL = {"customers": 30, "open_orders": 450, "lines": 0, "history_lines": 450}
LEARNING = {"customers": 30, "open_orders": 450, "lines": 0, "history_lines": 600}


@pytest.fixture(scope="module")
def case():
    return generate_case(seed=12, **SMALL)


@pytest.fixture(scope="module")
def serial(case):
    index, replayed = replay_history(case.data, blocks=3, workers=1)
    model = train_model(replayed.examples, blocks=replayed.blocks, workers=1)
    return index, replayed, model


@pytest.fixture(scope="module")
def parallel(case):
    index, replayed = replay_history(case.data, blocks=3, workers=2)
    model = train_model(replayed.examples, blocks=replayed.blocks, workers=2)
    return index, replayed, model


def test_replay_in_workers_same_examples(serial, parallel):
    single, pooled = serial[1], parallel[1]

    assert len(pooled.examples) == len(single.examples) == SMALL["history_lines"]
    for first, second in zip(single.examples, pooled.examples):
        assert second.line_ref == first.line_ref
        assert second.booking_date == first.booking_date
        assert np.array_equal(second.features, first.features), first.line_ref
        assert np.array_equal(second.labels, first.labels), first.line_ref
        assert second.kinds == first.kinds
        assert second.customer_id == first.customer_id
        assert second.anomaly == first.anomaly
        assert second.covered == first.covered
    assert vars(pooled.report) == vars(single.report)


def test_replay_in_workers_same_blocks(serial, parallel):
    single, pooled = serial[1], parallel[1]

    assert len(pooled.blocks) == len(single.blocks) == 3
    for first, second in zip(single.blocks, pooled.blocks):
        assert [line.line_ref for line in second.lines] == [
            line.line_ref for line in first.lines
        ]
        assert second.pending == first.pending


def test_replay_in_workers_same_index(serial, parallel):
    single, pooled = serial[0], parallel[0]

    assert {key: order.open for key, order in pooled.orders.items()} == {
        key: order.open for key, order in single.orders.items()
    }
    assert pooled.versions == single.versions


def test_train_in_workers_same_model(serial, parallel):
    single, pooled = serial[2], parallel[2]

    assert pooled.version == single.version
    assert pooled.metrics == single.metrics
    assert pooled.threshold == single.threshold
    assert np.array_equal(pooled.calibrator.coef_, single.calibrator.coef_)


def test_train_in_workers_same_scores(serial, parallel):
    examples = serial[1].examples
    X = np.vstack([example.features for example in examples])

    assert np.array_equal(parallel[2].ranker.predict(X), serial[2].ranker.predict(X))


@pytest.mark.parametrize(
    ("workers", "lines", "expected"),
    [
        pytest.param(None, PARALLEL_MIN_LINES - 1, 1, id="default-few-lines"),
        pytest.param(3, 10, 3, id="given"),
        pytest.param(1, 10**6, 1, id="single"),
    ],
)
def test_parallel_workers(workers, lines, expected):
    assert parallel_workers(workers, lines) == expected


def test_parallel_workers_rejects_zero():
    with pytest.raises(ValueError, match="at least 1, got 0"):
        parallel_workers(0, 10)


@pytest.fixture(scope="module")
def prepared():
    labels = labels_from_case(generate_case(seed=13, **LEARNING).data)
    serving, _ = train_from_history(generate_case(seed=14, **LEARNING).data)
    return PreparedTraining(
        labels=labels,
        source="case",
        learning=LearningSettings(),
        serving=serving,
        serving_version=serving.version,
    )


def test_learn_in_worker_same_run(prepared):
    single = learn(prepared, workers=1)
    pooled = learn(prepared, workers=2)

    assert pooled.model.version == single.model.version
    assert pooled.evaluation.summary() == _exactly(single.evaluation.summary())
    assert pooled.serving is not None
    assert pooled.serving.summary() == _exactly(single.serving.summary())
    assert pooled.serving_error is None
    assert pooled.beats_serving == single.beats_serving
    assert pooled.reason == single.reason
    assert pooled.seconds["evaluate_serving"] > 0


def _exactly(figures: dict[str, float]):
    # Equal figures, where a rate of no lines is NaN in both.
    return pytest.approx(figures, rel=0, abs=0, nan_ok=True)
