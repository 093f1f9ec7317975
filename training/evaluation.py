"""Evaluating models on the latest period of labelled lines.

Labelled lines are split by booking date: a model is trained on the lines
before a cut date and every model, new or serving, matches the lines from
that date on, starting from the same index. The index is the one the
training history left behind, with the open amounts as of the cut, and the
orders placed later join it on their order date, as they would have when
those lines arrived. Models are so compared on the same lines, from the
same state.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby, pairwise
from pathlib import Path

import numpy as np

from ingest.records import OrderRecord
from matcher.index import MatchIndex
from matcher.pipeline import AUTO, LineResult, Matcher, MatchModel, allocation_rows
from models.errors import ModelNotReady
from training.dataset import add_placed_orders
from training.labels import LabelledLine
from training.metrics import KindMetrics, Metrics, Rate, evaluate

log = logging.getLogger("cashmatch.training")

DEFAULT_EVAL_SHARE = 0.2
MIN_EVAL_LINES = 10
# train_model raises ModelNotReady below this many lines (training.train.MIN_EXAMPLES).
MIN_TRAIN_LINES = 30
CALIBRATION_BINS = 10


@dataclass
class TimeSplit:
    """Labelled lines before `eval_from` to train on, and from it to evaluate on."""

    train: list[LabelledLine]
    test: list[LabelledLine]
    eval_from: date

    def window(self) -> dict[str, str]:
        """Return the dates of both parts, as MLflow parameters."""
        return {
            "train_from": self.train[0].record.booking_date.isoformat(),
            "train_to": self.train[-1].record.booking_date.isoformat(),
            "eval_from": self.eval_from.isoformat(),
            "eval_to": self.test[-1].record.booking_date.isoformat(),
        }


def required_labels(min_labels: int, eval_share: float) -> int:
    """Return how many labelled lines a split by time needs at least."""
    for_training = math.ceil(MIN_TRAIN_LINES / (1.0 - eval_share))
    for_evaluation = math.ceil(MIN_EVAL_LINES / eval_share)
    return max(min_labels, for_training, for_evaluation)


def split_by_time(
    lines: list[LabelledLine],
    *,
    eval_share: float = DEFAULT_EVAL_SHARE,
    eval_from: date | None = None,
) -> TimeSplit:
    """Split lines at a booking date; the latest `eval_share` is evaluated on.

    Lines of one day stay on one side, so the evaluated share is about
    `eval_share`. Raises ModelNotReady when a side gets too few lines.
    """
    if not 0.0 < eval_share < 1.0:
        raise ValueError(f"eval_share must be between 0 and 1, got {eval_share}")
    ordered = sorted(lines, key=lambda line: (line.record.booking_date, line.line_ref))
    if not ordered:
        raise ModelNotReady("no labelled lines to split; review lines first")
    if eval_from is None:
        cut = min(len(ordered) - 1, round(len(ordered) * (1.0 - eval_share)))
        eval_from = ordered[cut].record.booking_date
    train = [line for line in ordered if line.record.booking_date < eval_from]
    test = [line for line in ordered if line.record.booking_date >= eval_from]
    if len(train) < MIN_TRAIN_LINES or len(test) < MIN_EVAL_LINES:
        raise ModelNotReady(
            f"splitting {len(ordered)} labelled lines at {eval_from} leaves "
            f"{len(train)} to train on and {len(test)} to evaluate on; at least "
            f"{MIN_TRAIN_LINES} and {MIN_EVAL_LINES} are needed. Choose another "
            "evaluation start or review more lines"
        )
    return TimeSplit(train, test, eval_from)


@dataclass
class EvaluationStart:
    """The index at the cut, pickled, and the orders placed from the cut on."""

    index: bytes
    pending: list[OrderRecord]


def evaluation_start(
    index: MatchIndex, orders: list[OrderRecord], eval_from: date
) -> EvaluationStart:
    """Return the state every evaluated model starts from.

    `index` is the one left by replaying the training lines, with the open
    amounts of `orders` (as of the cut). Orders placed on or after the cut
    leave it, to join again on their order date.
    """
    # NOTE: the replay teaches this index the memo statistics of the labelled
    # lines, but the served index (service.index.load_index) has none. Served
    # matches can so fall short of these figures where memo habits matter.
    copy = pickle.loads(pickle.dumps(index))
    pending = sorted(
        (order for order in orders if order.order_date >= eval_from),
        key=lambda order: (order.order_date, order.order_id),
    )
    for order in pending:
        copy.remove_order(order.order_id)
    return EvaluationStart(pickle.dumps(copy), pending)


@dataclass
class Evaluation:
    """The figures of one model on the evaluated lines.

    `right`, `auto` and `confidence` contain one value per line, in the
    order the lines were matched.
    """

    model_version: str
    metrics: Metrics
    top1: Rate
    by_channel: dict[str, KindMetrics]
    confidence: np.ndarray
    right: np.ndarray
    auto: np.ndarray
    line_refs: list[str] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return self.metrics.lines

    @property
    def accuracy(self) -> Rate:
        return self.metrics.accuracy

    @property
    def automation(self) -> Rate:
        return self.metrics.automation

    @property
    def precision(self) -> Rate:
        return self.metrics.precision

    def summary(self) -> dict[str, float]:
        """Return the figures as flat numbers, for MLflow and the registry."""
        low, high = self.precision.interval
        figures = {
            "lines": float(self.lines),
            "top1_accuracy": self.top1.value,
            "allocation_accuracy": self.accuracy.value,
            "automation_rate": self.automation.value,
            "auto_lines": float(self.automation.hits),
            "auto_precision": self.precision.value,
            "auto_precision_low": low,
            "auto_precision_high": high,
        }
        for prefix, groups in (
            ("kind", self.metrics.by_kind),
            ("channel", self.by_channel),
        ):
            for name, counts in groups.items():
                key = f"{prefix}_{name or 'unknown'}"
                figures[f"{key}_lines"] = float(counts.lines)
                figures[f"{key}_accuracy"] = counts.accuracy.value
                figures[f"{key}_automation_rate"] = counts.automation.value
                figures[f"{key}_auto_precision"] = counts.precision.value
        return figures

    def headline(self) -> str:
        """Return the main figures on one line."""
        low, high = self.precision.interval
        interval = (
            f" (95 % CI {100 * low:.1f}-{100 * high:.1f} %)"
            if self.precision.total
            else ""
        )
        return (
            f"{self.lines} lines: top-1 {self.top1}, allocation accuracy "
            f"{self.accuracy}, automation {self.automation}, precision of "
            f"auto {self.precision}{interval}"
        )


def evaluate_model(
    model: MatchModel, start: EvaluationStart, lines: list[LabelledLine]
) -> Evaluation:
    """Match the lines day by day from `start` and compare with their truth.

    Raises ModelNotReady when the model no longer fits the features.
    """
    index = pickle.loads(start.index)
    matcher = Matcher(index, model)
    pending = list(start.pending)
    ordered = sorted(lines, key=lambda line: (line.record.booking_date, line.line_ref))
    results: list[LineResult] = []
    for day, group in groupby(ordered, key=lambda line: line.record.booking_date):
        pending = add_placed_orders(index, pending, day)
        results += matcher.match_batch([line.record for line in group])
    return _score(model.version, ordered, results)


def _score(version: str, lines: list[LabelledLine], results: list[LineResult]):
    truth = [row for line in lines for row in line.truth_rows()]
    predicted = allocation_rows(results)
    metrics = evaluate(
        predicted, truth, kinds={line.line_ref: line.kind for line in lines}
    )
    channels = evaluate(
        predicted, truth, kinds={line.line_ref: line.record.channel for line in lines}
    )
    wrong = set(metrics.wrong)
    top_hits = sum(_top_is_truth(line, result) for line, result in zip(lines, results))
    return Evaluation(
        model_version=version,
        metrics=metrics,
        top1=Rate(top_hits, len(lines)),
        by_channel=channels.by_kind,
        confidence=np.array([result.confidence for result in results]),
        right=np.array([line.line_ref not in wrong for line in lines], dtype=bool),
        auto=np.array([result.decision == AUTO for result in results], dtype=bool),
        line_refs=[line.line_ref for line in lines],
    )


def _top_is_truth(line: LabelledLine, result: LineResult) -> bool:
    top = result.ranked[0].candidate if result.ranked else None
    if top is None:
        return False
    truth = line.truth_key
    if not truth[0]:
        return top.kind == "none"
    return top.key() == truth


def compare(
    new: Evaluation, old: Evaluation | None, *, target_precision: float
) -> tuple[bool, str]:
    """Tell whether `new` beats `old` on the same lines, and why.

    The new model must book more lines exactly right; with as many right,
    it must decide more lines automatically. Either way its precision of
    automatic decisions must reach the target, or the old model's precision
    where that is lower.
    """
    if old is None:
        return True, "no serving model to compare with"
    if new.lines != old.lines:
        raise ValueError(
            f"evaluations cover {new.lines} and {old.lines} lines; compare "
            "models on the same lines"
        )
    floor = target_precision
    if old.precision.total:
        floor = min(floor, old.precision.value)
    if new.precision.total and new.precision.value < floor:
        return False, (
            f"precision of automatic decisions {new.precision.value:.3f} is below "
            f"{floor:.3f}"
        )
    shown = f"{new.accuracy.value:.3f} against {old.accuracy.value:.3f}"
    if new.accuracy.hits > old.accuracy.hits:
        return True, f"allocation accuracy {shown} of {old.model_version}"
    if (
        new.accuracy.hits == old.accuracy.hits
        and new.automation.hits > old.automation.hits
    ):
        return True, (
            f"allocation accuracy equal, automation {new.automation.value:.3f} "
            f"against {old.automation.value:.3f} of {old.model_version}"
        )
    return False, f"allocation accuracy {shown} of {old.model_version} is no gain"


# Calibration -------------------------------------------------------------------


def calibration_bins(
    evaluation: Evaluation, bins: int = CALIBRATION_BINS
) -> list[dict]:
    """Return, per confidence bin, the mean confidence and the share right."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    found = []
    confidence = evaluation.confidence
    for low, high in pairwise(edges):
        # The last bin includes a confidence of exactly 1.0.
        below = confidence < high if high < 1.0 else confidence <= high
        inside = (confidence >= low) & below
        count = int(inside.sum())
        found.append(
            {
                "low": float(low),
                "high": float(high),
                "lines": count,
                "mean_confidence": float(evaluation.confidence[inside].mean())
                if count
                else None,
                "share_right": float(evaluation.right[inside].mean())
                if count
                else None,
            }
        )
    return found


def write_calibration(evaluation: Evaluation, folder: Path) -> list[Path]:
    """Write the calibration plot (PNG) and its bins (JSON) into `folder`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bins = calibration_bins(evaluation)
    filled = [b for b in bins if b["lines"]]
    figure = Figure(figsize=(5, 5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(
        [0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated"
    )
    axes.plot(
        [b["mean_confidence"] for b in filled],
        [b["share_right"] for b in filled],
        marker="o",
        label=f"model {evaluation.model_version}",
    )
    axes.set_xlabel("confidence")
    axes.set_ylabel("share of lines booked right")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(f"calibration on {evaluation.lines} evaluated lines")
    axes.legend(loc="upper left")

    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / "calibration.png"
    figure.savefig(plot, dpi=100)
    table = folder / "calibration.json"
    table.write_text(json.dumps(bins, indent=2))
    return [plot, table]
