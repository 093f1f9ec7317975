import pytest

from models.errors import ModelNotReady
from training.case import replay_history
from training.dataset import block_starts, truth_shape
from training.synthetic import generate_case
from training.train import TrainSettings, match_block, time_blocks, train_model

SMALL = {"customers": 30, "open_orders": 450, "lines": 0, "history_lines": 450}


@pytest.fixture(scope="module")
def replayed():
    case = generate_case(seed=12, **SMALL)
    return replay_history(case.data, blocks=3)[1]


@pytest.fixture(scope="module")
def model(replayed):
    return train_model(replayed.examples, blocks=replayed.blocks)


@pytest.mark.parametrize(
    ("count", "blocks", "starts"),
    [
        pytest.param(9, 3, [0, 3, 6], id="even"),
        pytest.param(10, 3, [0, 3, 7], id="uneven"),
        pytest.param(2, 3, [0, 1], id="fewer-lines"),
    ],
)
def test_block_starts_cut_evenly(count, blocks, starts):
    assert block_starts(count, blocks) == starts


def test_replay_keeps_blocks_of_all_lines(replayed):
    lines = [line.line_ref for block in replayed.blocks for line in block.lines]

    assert len(replayed.blocks) == 3
    assert len(lines) == len(set(lines)) == SMALL["history_lines"]


def test_time_blocks_partition_examples(replayed):
    blocks = time_blocks(replayed.examples, 3)

    refs = [e.line_ref for block in blocks for e in block]
    assert sorted(refs) == sorted(e.line_ref for e in replayed.examples)
    assert max(e.booking_date for e in blocks[0]) <= min(
        e.booking_date for e in blocks[1]
    )


def test_train_model_with_blocks(model):
    model.check()
    assert model.calibrator is not None
    assert model.threshold >= TrainSettings().min_confidence
    assert 0.0 <= model.metrics["validation_top1_accuracy"] <= 1.0
    assert model.anomaly is not None


def test_match_block_one_result_per_rankable_line(replayed, model):
    block = replayed.blocks[1]

    held_out = match_block(block, model.ranker)

    assert len(held_out.right) == len(held_out.summaries) == len(held_out.line_refs)
    assert set(held_out.line_refs) <= {line.line_ref for line in block.lines}
    assert held_out.right.mean() > 0.8


def test_train_model_needs_enough_lines(replayed):
    with pytest.raises(ModelNotReady, match="at least 30 labelled lines"):
        train_model(replayed.examples[:10])


def test_train_model_needs_two_folds(replayed):
    with pytest.raises(ValueError, match="folds must be at least 2"):
        train_model(replayed.examples, TrainSettings(folds=1))


def test_truth_shape_of_rows():
    from datetime import date
    from decimal import Decimal

    from ingest.records import AllocationRecord, CustomerRecord, OrderRecord
    from matcher.index import MatchIndex

    index = MatchIndex.build(
        [CustomerRecord("C1", "苏州恒达机械设备有限公司")],
        [
            OrderRecord(
                "SO-1", "C1", date(2024, 10, 1), Decimal("100.00"), Decimal("100.00")
            )
        ],
    )

    def rows(*parts):
        return [AllocationRecord("L1", *part) for part in parts]

    assert truth_shape(index, rows(("", "", "none", Decimal("5.00")))) == "none"
    assert truth_shape(index, rows(("C1", "", "balance", Decimal("5.00")))) == "balance"
    assert (
        truth_shape(index, rows(("C1", "SO-1", "order", Decimal("100.00")))) == "order"
    )
    assert truth_shape(index, rows(("C1", "SO-1", "order", Decimal("40.00")))) == "part"
    assert (
        truth_shape(
            index,
            rows(
                ("C1", "SO-1", "order", Decimal("100.00")),
                ("C1", "", "balance", Decimal("9.00")),
            ),
        )
        == "overpay"
    )
