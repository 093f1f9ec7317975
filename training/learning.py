"""One turn of the learning loop: fit on older labels, evaluate on the latest.

`run_learning` splits the labelled lines by time, trains the ranker and its
calibration on the older part, and evaluates the new model and the serving
one on the latest part from the same starting index. Lines where a clerk
replaced the matcher's answer (hard negatives) are repeated in the training
examples, so the ranker weighs those mistakes more.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date

from matcher.index import MatchIndex
from matcher.pipeline import MatchModel
from models.errors import ModelNotReady
from training.case import replay_history
from training.dataset import Example
from training.evaluation import (
    DEFAULT_EVAL_SHARE,
    Evaluation,
    TimeSplit,
    compare,
    evaluate_model,
    evaluation_start,
    split_by_time,
)
from training.labels import LabelSet
from training.train import TrainSettings, train_model

log = logging.getLogger("cashmatch.training")


@dataclass(frozen=True)
class LearningSettings:
    """Settings of a learning run: the split, the hard-negative weight, the fit."""

    eval_share: float = DEFAULT_EVAL_SHARE
    hard_negative_repeats: int = 2
    train: TrainSettings = field(default_factory=TrainSettings)

    def as_params(self) -> dict[str, object]:
        """Return the settings as flat MLflow parameters."""
        params: dict[str, object] = {
            "eval_share": self.eval_share,
            "hard_negative_repeats": self.hard_negative_repeats,
        }
        for name, value in vars(self.train).items():
            params[f"train_{name}"] = value
        return params


@dataclass
class LearningRun:
    """The new model, the evaluations of it and the serving model, the verdict."""

    model: MatchModel
    split: TimeSplit
    evaluation: Evaluation
    serving: Evaluation | None
    serving_error: str | None
    beats_serving: bool
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)


def run_learning(
    labels: LabelSet,
    settings: LearningSettings | None = None,
    *,
    serving: MatchModel | None = None,
    eval_from: date | None = None,
) -> LearningRun:
    """Train on the older labelled lines, evaluate on the latest, compare."""
    settings = settings or LearningSettings()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    split = split_by_time(
        labels.lines, eval_share=settings.eval_share, eval_from=eval_from
    )

    model, index = fit_lines(labels, split.train, settings)
    seconds["fit"] = time.perf_counter() - started

    mark = time.perf_counter()
    orders = labels.case_data(split.train).orders
    start = evaluation_start(index, orders, split.eval_from)
    evaluation = evaluate_model(model, start, split.test)
    seconds["evaluate_new"] = time.perf_counter() - mark
    log.info("model %s on the latest period: %s", model.version, evaluation.headline())

    mark = time.perf_counter()
    current, error = _evaluate_serving(serving, start, split)
    seconds["evaluate_serving"] = time.perf_counter() - mark
    beats, reason = compare(
        evaluation, current, target_precision=settings.train.target_precision
    )
    if error is not None:
        reason = f"{reason}; the serving model could not be evaluated: {error}"
    return LearningRun(
        model=model,
        split=split,
        evaluation=evaluation,
        serving=current,
        serving_error=error,
        beats_serving=beats,
        reason=reason,
        seconds=seconds,
    )


def fit_lines(
    labels: LabelSet, lines, settings: LearningSettings
) -> tuple[MatchModel, MatchIndex]:
    """Train a model on some labelled lines; return it and the index after them."""
    data = labels.case_data(lines)
    index, replayed = replay_history(data, blocks=settings.train.folds)
    corrected = {line.line_ref for line in lines if line.corrected}
    examples = repeat_hard_negatives(
        replayed.examples, corrected, settings.hard_negative_repeats
    )
    model = train_model(examples, settings.train, blocks=replayed.blocks)
    model.metrics["history_lines"] = replayed.report.lines
    model.metrics["history_lines_without_right_candidate"] = replayed.report.missed
    model.metrics["corrected_lines"] = len(corrected)
    return model, index


def repeat_hard_negatives(
    examples: list[Example], corrected: set[str], repeats: int
) -> list[Example]:
    """Return the examples with each corrected line's example `repeats` times.

    A corrected line's candidates contain the allocation the clerk replaced,
    as a negative beside the clerk's allocation. Repeating the line weighs
    that pair more in the lambdarank loss.
    """
    if repeats < 1:
        raise ValueError(f"hard_negative_repeats must be at least 1, got {repeats}")
    weighted = []
    for example in examples:
        times = repeats if example.line_ref in corrected else 1
        weighted.extend([example] * times)
    return weighted


def _evaluate_serving(serving: MatchModel | None, start, split: TimeSplit):
    if serving is None:
        return None, None
    try:
        return evaluate_model(serving, start, split.test), None
    except ModelNotReady as exc:
        log.warning("serving model %s cannot be evaluated: %s", serving.version, exc)
        return None, str(exc)
