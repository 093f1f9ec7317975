"""Fitting the ranker, its calibration, the threshold and the anomaly scorer.

The calibration needs ranker scores of lines the ranker did not train on.
Training therefore cuts the labelled lines into `folds` blocks of booking
dates, fits one ranker per block on the other blocks and scores the block
with it. Every labelled line so gets an honest score, the calibrator is
fitted on all of them, and the automation threshold is chosen on
confidences that the calibrator itself did not see either. The ranker that
ships is then fitted on all lines.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass

import numpy as np

from features.pairs import FEATURE_NAMES
from matcher.anomaly import AnomalyScorer
from matcher.decision import AUTO, ConfidenceCalibrator, choose_threshold, line_summary
from matcher.pipeline import Matcher, MatchModel, paused_cyclic_gc
from matcher.ranker import CandidateRanker
from models.errors import ModelNotReady
from training.dataset import (
    Example,
    HistoryBlock,
    add_placed_orders,
    parallel_workers,
    truth_candidate_key,
    worker_pool,
)

log = logging.getLogger("cashmatch.training")

MIN_EXAMPLES = 30
CALIBRATION_FOLDS = 5


@dataclass(frozen=True)
class TrainSettings:
    """The settings of training and of the held-out lines for calibration."""

    folds: int = 3
    target_precision: float = 0.995
    min_confidence: float = 0.8
    n_estimators: int = 120
    learning_rate: float = 0.12
    num_leaves: int = 15
    seed: int = 0


@dataclass
class HeldOut:
    """Per line: the calibrator inputs, whether the top was right, its kind."""

    summaries: np.ndarray
    right: np.ndarray
    top_kinds: list[str]
    line_refs: list[str]
    # True where a decision guard would send the line to review anyway.
    guarded: np.ndarray | None = None


def stack(examples: list[Example], dtype=np.float64):
    """Return the candidate matrix, labels and group sizes of examples."""
    X = np.vstack([e.features for e in examples], dtype=dtype)
    y = np.concatenate([e.labels for e in examples])
    group = np.array([len(e.labels) for e in examples], dtype=np.int32)
    return X, y, group


def time_blocks(examples: list[Example], folds: int) -> list[list[Example]]:
    """Cut examples into `folds` blocks of consecutive booking dates."""
    ordered = sorted(examples, key=lambda e: (e.booking_date, e.line_ref))
    edges = np.linspace(0, len(ordered), folds + 1).round().astype(int)
    return [ordered[edges[i] : edges[i + 1]] for i in range(folds)]


def evaluate_top(ranker: CandidateRanker, examples: list[Example]) -> HeldOut:
    """Return each line's calibrator inputs, whether its top was right, its kind."""
    summaries, right, top_kinds = [], [], []
    for example in examples:
        scores = ranker.predict(example.features)
        top = int(np.argmax(scores))
        summaries.append(line_summary(scores, example.kinds, example.features))
        right.append(int(example.labels[top] == 1))
        top_kinds.append(example.kinds[top])
    refs = [example.line_ref for example in examples]
    return HeldOut(np.asarray(summaries), np.asarray(right), top_kinds, refs)


def train_model(
    examples: list[Example],
    settings: TrainSettings | None = None,
    *,
    blocks: list[HistoryBlock] | None = None,
    workers: int | None = None,
) -> MatchModel:
    """Train a complete MatchModel from labelled examples.

    With `blocks` (from `replay(..., blocks=settings.folds)`), each block of
    history is matched again by a ranker that did not train on it, booking
    its own suggestions the way a statement is matched, and the calibration
    learns from those results. Without them it learns from the examples,
    which were scored against the true earlier bookings and so are a little
    easier than a statement.

    With blocks and more than one of `workers` (default: one per usable CPU
    core), the blocks are matched and the shipped ranker is fitted in worker
    processes. The model is the same as that of one process.
    """
    settings = settings or TrainSettings()
    rankable = [e for e in examples if len(e.labels) >= 2]
    if len(rankable) < MIN_EXAMPLES:
        raise ModelNotReady(
            f"training needs at least {MIN_EXAMPLES} labelled lines with a "
            f"candidate, got {len(rankable)}; review more lines or use the "
            "cold-start model"
        )
    if settings.folds < 2:
        raise ValueError(f"folds must be at least 2, got {settings.folds}")

    workers = parallel_workers(workers, len(rankable))
    if blocks and workers > 1:
        held_out, calibration, ranker = _fit_in_workers(
            rankable, blocks, settings, workers
        )
    else:
        if blocks:
            held_out = _cross_match(rankable, blocks, settings)
        else:
            held_out = _cross_fit(rankable, settings)
        calibration = _calibrate(held_out, settings)
        ranker = _fit_ranker(rankable, settings)
    calibrator, threshold, precision = calibration

    model = MatchModel(
        ranker=ranker,
        calibrator=calibrator,
        threshold=threshold,
        version="",
        anomaly=_fit_anomaly(examples),
        metrics={
            "train_lines": len(examples),
            "validation_lines": len(held_out.right),
            "validation_top1_accuracy": float(held_out.right.mean()),
            "validation_auto_precision": precision,
            "threshold": threshold,
        },
    )
    model.version = model_fingerprint(examples, settings)
    log.info(
        "trained model %s on %d lines; held-out top-1 %.3f, threshold %.3f",
        model.version,
        len(examples),
        held_out.right.mean(),
        threshold,
    )
    return model


def _cross_fit(examples: list[Example], settings: TrainSettings) -> HeldOut:
    blocks = time_blocks(examples, settings.folds)
    parts = []
    for i, block in enumerate(blocks):
        rest = [e for j, other in enumerate(blocks) if j != i for e in other]
        ranker = _fit_ranker(rest, settings)
        parts.append(evaluate_top(ranker, block))
    return _join(parts)


def _cross_match(
    examples: list[Example], blocks: list[HistoryBlock], settings: TrainSettings
) -> HeldOut:
    parts = []
    for block in blocks:
        inside = {line.line_ref for line in block.lines}
        rest = [e for e in examples if e.line_ref not in inside]
        ranker = _fit_ranker(rest, settings)
        parts.append(match_block(block, ranker))
    return _join(parts)


def _fit_in_workers(
    examples: list[Example],
    blocks: list[HistoryBlock],
    settings: TrainSettings,
    workers: int,
):
    """Match each block and fit the shipped ranker in worker processes.

    Returns the held-out results, the calibration (fitted here while the
    shipped ranker may still be fitting) and the shipped ranker.
    """
    # Every job gets its own process, even beyond `workers`: the blocks take
    # about as long each, so three blocks on two processes would leave one
    # process idle while the other matches its second block.
    with worker_pool(min(len(blocks) + 1, 2 * workers)) as pool:
        folds = []
        for block in blocks:
            inside = {line.line_ref for line in block.lines}
            rest = [e for e in examples if e.line_ref not in inside]
            folds.append(
                pool.submit(_match_fold, _own_truth(block), *_covered(rest), settings)
            )
        shipped = pool.submit(_fit_stacked, *_covered(examples), settings)
        held_out = _join([fold.result() for fold in folds])
        calibration = _calibrate(held_out, settings)
        return held_out, calibration, shipped.result()


def _own_truth(block: HistoryBlock) -> HistoryBlock:
    # A block shares the truth of the whole history; a worker needs only
    # its own lines' allocations.
    truth = {line.line_ref: block.truth.get(line.line_ref, []) for line in block.lines}
    return HistoryBlock(block.start, block.pending, block.lines, truth)


def _covered(examples: list[Example]):
    # float32, as the ranker fits on, halves what is sent to a worker.
    return stack([e for e in examples if e.covered], dtype=np.float32)


def _match_fold(block: HistoryBlock, X, y, group, settings: TrainSettings) -> HeldOut:
    return match_block(block, _fit_stacked(X, y, group, settings))


def _join(parts: list[HeldOut]) -> HeldOut:
    guarded = None
    if all(part.guarded is not None for part in parts):
        guarded = np.concatenate([part.guarded for part in parts])
    return HeldOut(
        np.vstack([part.summaries for part in parts if len(part.right)]),
        np.concatenate([part.right for part in parts]),
        [kind for part in parts for kind in part.top_kinds],
        [ref for part in parts for ref in part.line_refs],
        guarded,
    )


def match_block(block: HistoryBlock, ranker: CandidateRanker) -> HeldOut:
    """Match a history block from its starting index, booking as a statement does.

    Without a calibrator every line that no guard stops counts as
    automatic, so payers are learned about as often as in a real run.
    """
    index = pickle.loads(block.start)
    model = MatchModel(ranker=ranker, calibrator=None, threshold=-1.0, version="fold")
    matcher = Matcher(index, model)
    pending = list(block.pending)
    summaries, right, top_kinds, refs, guarded = [], [], [], [], []
    with paused_cyclic_gc():
        for line in block.lines:
            pending = add_placed_orders(index, pending, line.booking_date)
            scored, result = matcher.match_scored(line, score_anomaly=False)
            if len(scored.candidates) < 2:
                continue
            kinds = [c.kind for c in scored.candidates]
            top = int(np.argmax(scored.scores))
            truth = truth_candidate_key(block.truth.get(line.line_ref, []))
            summaries.append(line_summary(scored.scores, kinds, scored.matrix))
            right.append(int(_books_truth(scored.candidates[top], truth)))
            top_kinds.append(kinds[top])
            refs.append(line.line_ref)
            guarded.append(result.decision != AUTO)
    return HeldOut(
        np.asarray(summaries),
        np.asarray(right, dtype=np.int32),
        top_kinds,
        refs,
        np.asarray(guarded, dtype=bool),
    )


def _books_truth(candidate, truth: tuple) -> bool:
    if not truth[0]:
        return candidate.kind == "none"
    return candidate.key() == truth


def _fit_ranker(examples: list[Example], settings: TrainSettings) -> CandidateRanker:
    covered = [e for e in examples if e.covered]
    return _fit_stacked(*stack(covered), settings)


def _fit_stacked(X, y, group, settings: TrainSettings) -> CandidateRanker:
    return CandidateRanker(
        n_estimators=settings.n_estimators,
        learning_rate=settings.learning_rate,
        num_leaves=settings.num_leaves,
        random_state=settings.seed,
    ).fit(X, y, group=group, feature_names=FEATURE_NAMES)


def _calibrate(held_out: HeldOut, settings: TrainSettings):
    """Fit the calibrator and choose the threshold on calibrator-unseen lines."""
    summaries, right = held_out.summaries, held_out.right
    if len(set(right.tolist())) < 2:
        # Every held-out line was right, or every one wrong. With nothing to
        # calibrate against, nothing is decided automatically.
        log.warning(
            "calibration skipped: all %d held-out lines have the same outcome",
            len(right),
        )
        return None, 1.01, float("nan")

    confidence = _cross_confidence(summaries, right, settings.seed)
    # A line whose top is "no match" is never decided automatically, and
    # neither is one a decision guard stops, so only the others tell how
    # precise automatic decisions are above a cut.
    bookable = np.array([kind != "none" for kind in held_out.top_kinds], dtype=bool)
    if held_out.guarded is not None:
        bookable &= ~held_out.guarded
    threshold = choose_threshold(
        confidence[bookable],
        right[bookable],
        target_precision=settings.target_precision,
    )
    # However precise the held-out lines were in bulk, a line the
    # calibrator finds less likely than `min_confidence` waits for a clerk,
    # because a statement can contain more such lines than the history did.
    threshold = max(threshold, settings.min_confidence)
    above = bookable & (confidence >= threshold)
    precision = float(right[above].mean()) if above.any() else float("nan")
    return ConfidenceCalibrator().fit(summaries, right), threshold, precision


def _cross_confidence(
    summaries: np.ndarray, right: np.ndarray, seed: int
) -> np.ndarray:
    """Return each line's confidence from a calibrator fitted without that line."""
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(right)) % CALIBRATION_FOLDS
    confidence = np.zeros(len(right))
    for fold in range(CALIBRATION_FOLDS):
        test = fold_of == fold
        train = ~test
        if len(set(right[train].tolist())) < 2:
            confidence[test] = right[train].mean()
            continue
        calibrator = ConfidenceCalibrator().fit(summaries[train], right[train])
        confidence[test] = calibrator.predict_proba_right(summaries[test])
    return confidence


def _fit_anomaly(examples: list[Example]) -> AnomalyScorer | None:
    # Money in only, because money out never settles a customer's order and
    # its bank charges would look unusual among the customers' payments.
    rows = [e.anomaly for e in examples if e.anomaly[0] > 0]
    if len(rows) < 10:
        return None
    return AnomalyScorer().fit(rows)


def model_fingerprint(examples: list[Example], settings: TrainSettings) -> str:
    """Return a short version id that is the same for the same training input."""
    digest = hashlib.sha256()
    digest.update(repr(settings).encode())
    for example in sorted(examples, key=lambda e: e.line_ref):
        digest.update(example.line_ref.encode())
        digest.update(example.labels.tobytes())
        digest.update(np.round(example.features, 4).tobytes())
    return "m-" + digest.hexdigest()[:10]
