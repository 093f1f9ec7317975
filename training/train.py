"""Fitting the ranker, its calibration, the threshold and the anomaly scorer."""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from matcher.anomaly import AnomalyScorer
from matcher.decision import ConfidenceCalibrator, choose_threshold, line_summary
from matcher.pipeline import MatchModel
from matcher.ranker import CandidateRanker
from models.errors import ModelNotReady
from training.dataset import Example

log = logging.getLogger("cashmatch.training")

MIN_EXAMPLES = 30


@dataclass(frozen=True)
class TrainSettings:
    """What training fits and on which share of the labelled lines."""

    validation_share: float = 0.25
    target_precision: float = 0.995
    n_estimators: int = 300
    learning_rate: float = 0.05
    seed: int = 0


def stack(examples: list[Example]):
    """Return the candidate matrix, labels and group sizes of examples."""
    X = np.vstack([e.features for e in examples])
    y = np.concatenate([e.labels for e in examples])
    group = np.array([len(e.labels) for e in examples], dtype=np.int32)
    return X, y, group


def split_by_time(examples: list[Example], share: float):
    """Split examples so the latest `share` of lines validate."""
    ordered = sorted(examples, key=lambda e: (e.booking_date, e.line_ref))
    cut = int(round(len(ordered) * (1.0 - share)))
    cut = min(max(cut, 1), len(ordered) - 1)
    return ordered[:cut], ordered[cut:]


def evaluate_top(ranker: CandidateRanker, examples: list[Example]):
    """Return each line's calibrator inputs, whether its top was right, its kind."""
    summaries, right, top_kinds = [], [], []
    for example in examples:
        scores = ranker.predict(example.features)
        top = int(np.argmax(scores))
        summaries.append(line_summary(scores, example.kinds, example.identified))
        right.append(int(example.labels[top] == 1))
        top_kinds.append(example.kinds[top])
    return np.asarray(summaries), np.asarray(right), top_kinds


def train_model(
    examples: list[Example], settings: TrainSettings | None = None
) -> MatchModel:
    """Train a complete MatchModel from labelled examples."""
    settings = settings or TrainSettings()
    if len(examples) < MIN_EXAMPLES:
        raise ModelNotReady(
            f"training needs at least {MIN_EXAMPLES} labelled lines, "
            f"got {len(examples)}; review more lines or use the cold-start model"
        )

    fit_part, validation = split_by_time(examples, settings.validation_share)
    ranker = _fit_ranker([e for e in fit_part if e.covered], settings)
    summaries, right, top_kinds = evaluate_top(ranker, validation)
    calibrator, threshold = _calibrate(summaries, right, top_kinds, settings)

    model = MatchModel(
        ranker=ranker,
        calibrator=calibrator,
        threshold=threshold,
        version="",
        anomaly=_fit_anomaly(examples),
        typical_amounts=_typical_amounts(examples),
        metrics={
            "train_lines": len(fit_part),
            "validation_lines": len(validation),
            "validation_top1_accuracy": float(right.mean()),
            "threshold": threshold,
        },
    )
    model.version = model_fingerprint(examples, settings)
    log.info(
        "trained model %s on %d lines; validation top-1 %.3f, threshold %.3f",
        model.version,
        len(examples),
        right.mean(),
        threshold,
    )
    return model


def _fit_ranker(examples: list[Example], settings: TrainSettings) -> CandidateRanker:
    X, y, group = stack(examples)
    from features.pairs import FEATURE_NAMES

    return CandidateRanker(
        n_estimators=settings.n_estimators,
        learning_rate=settings.learning_rate,
        random_state=settings.seed,
    ).fit(X, y, group=group, feature_names=FEATURE_NAMES)


def _calibrate(summaries, right, top_kinds, settings: TrainSettings):
    if len(set(right.tolist())) < 2:
        # Every validation line was right (or wrong): nothing to calibrate
        # against, so the confidence is the observed rate, with a threshold
        # that only a perfect record on enough lines can reach.
        log.warning(
            "calibration skipped: all %d validation lines have the same outcome",
            len(right),
        )
        return None, 1.01
    calibrator = ConfidenceCalibrator().fit(summaries, right)
    confidence = calibrator.predict_proba_right(summaries)
    # A line whose top is "no match" is never decided automatically, so only
    # the others tell how precise automatic decisions are above a cut.
    bookable = np.array([kind != "none" for kind in top_kinds], dtype=bool)
    threshold = choose_threshold(
        confidence[bookable], right[bookable],
        target_precision=settings.target_precision,
    )
    return calibrator, threshold


def _fit_anomaly(examples: list[Example]) -> AnomalyScorer | None:
    rows = [e.anomaly for e in examples if e.customer_id]
    if len(rows) < 10:
        return None
    return AnomalyScorer().fit(rows)


def _typical_amounts(examples: list[Example]) -> dict[str, float]:
    sums: dict[str, list[float]] = defaultdict(list)
    for example in examples:
        if example.customer_id:
            sums[example.customer_id].append(example.anomaly[0])
    return {cid: float(np.median(values)) for cid, values in sums.items()}


def model_fingerprint(examples: list[Example], settings: TrainSettings) -> str:
    """Return a short version id that is the same for the same training input."""
    digest = hashlib.sha256()
    digest.update(repr(settings).encode())
    for example in sorted(examples, key=lambda e: e.line_ref):
        digest.update(example.line_ref.encode())
        digest.update(example.labels.tobytes())
        digest.update(np.round(example.features, 4).tobytes())
    return "m-" + digest.hexdigest()[:10]


def log_odds(p: float) -> float:
    """Return the log-odds of a probability, clipped away from 0 and 1."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
