"""Match-quality metrics: accuracy, automation, precision, duplicates, alarms.

The definitions are those of the benchmarks and the dashboard:

- allocation accuracy: the share of statement lines whose allocation
  (customer and the set of order and amount pairs, balance included, fee
  rows left out) equals the truth exactly, whatever the decision;
- automation rate: the share of lines decided `auto`;
- precision of automatic decisions: the share of `auto` lines whose
  allocation is right, with its Wilson 95 % score interval;
- duplicate recall: the share of true duplicate payments that are flagged;
- false alarms: the share of lines without a true anomaly that are flagged;
- per alert (duplicate, reference_conflict, over_advance, unusual_amount):
  the share of lines with that true anomaly that are flagged, and the share
  of normal lines that carry it.

A line is flagged when one of its anomaly reasons is an alert or its anomaly
score is at least 0.5.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from matcher.anomaly import ALERTS
from matcher.pipeline import group_rows, truth_key

FLAG_SCORE = 0.5
Z_95 = 1.959964


@dataclass(frozen=True)
class Rate:
    """A share of a count, with its Wilson 95 % interval."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.hits, self.total)

    def __str__(self) -> str:
        if not self.total:
            return "-"
        return f"{100 * self.value:.1f} %"


@dataclass
class KindMetrics:
    """The metrics of the lines of one payment kind."""

    lines: int = 0
    right: int = 0
    auto: int = 0
    auto_right: int = 0

    @property
    def accuracy(self) -> Rate:
        return Rate(self.right, self.lines)

    @property
    def automation(self) -> Rate:
        return Rate(self.auto, self.lines)

    @property
    def precision(self) -> Rate:
        return Rate(self.auto_right, self.auto)


@dataclass
class AnomalyMetrics:
    """Per alert, how often true anomalies were caught and normal lines flagged.

    `recall[kind]` counts the lines whose truth has that alert and which are
    flagged, by any alert or the score. `named[kind]` counts those whose
    reasons name that very alert. `false_alarms[reason]` counts the lines without a
    true alert that carry the reason; the reason "score" stands for a
    learned score of at least 0.5 without any alert.
    """

    recall: dict[str, Rate] = field(default_factory=dict)
    named: dict[str, Rate] = field(default_factory=dict)
    false_alarms: dict[str, Rate] = field(default_factory=dict)


@dataclass
class Metrics:
    """Match quality of predicted allocation rows against the truth."""

    overall: KindMetrics
    duplicates: Rate
    false_alarms: Rate
    by_kind: dict[str, KindMetrics] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    anomalies: AnomalyMetrics = field(default_factory=AnomalyMetrics)

    @property
    def lines(self) -> int:
        return self.overall.lines

    @property
    def accuracy(self) -> Rate:
        return self.overall.accuracy

    @property
    def automation(self) -> Rate:
        return self.overall.automation

    @property
    def precision(self) -> Rate:
        return self.overall.precision

    def headline(self) -> str:
        """Return the main figures on one line."""
        low, high = self.precision.interval
        interval = (
            ""
            if not self.precision.total
            else (f" (95 % CI {100 * low:.1f}-{100 * high:.1f} %)")
        )
        return (
            f"{self.lines} lines; allocation accuracy {self.accuracy}, "
            f"automation {self.automation}, precision of auto {self.precision}"
            f"{interval}, duplicate recall {self.duplicates}, "
            f"false alarms {self.false_alarms}"
        )


def wilson_interval(hits: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial share."""
    if total <= 0:
        return (float("nan"), float("nan"))
    p = hits / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    spread /= denominator
    return (max(0.0, centre - spread), min(1.0, centre + spread))


def as_row(row) -> dict:
    """Return an allocation row as a dict, from a dict or a record."""
    if isinstance(row, Mapping):
        return dict(row)
    return {
        "line_ref": row.line_ref,
        "customer_id": row.customer_id,
        "order_id": row.order_id,
        "target": row.target,
        "amount": row.amount,
    }


def row_alerts(rows: list[dict]) -> set[str]:
    """Return the alerts among the anomaly reasons of a line's rows."""
    found: set[str] = set()
    for row in rows:
        reasons = row.get("anomaly_reasons") or ""
        if isinstance(reasons, str):
            reasons = [r for r in reasons.split("|") if r]
        found.update(reason for reason in reasons if reason in ALERTS)
    return found


def high_score(rows: list[dict]) -> bool:
    """Tell whether a line's learned anomaly score is at least 0.5."""
    return any(float(row.get("anomaly_score") or 0.0) >= FLAG_SCORE for row in rows)


def is_flagged(rows: list[dict]) -> bool:
    """Tell whether a line's predicted rows carry an alert or a high score."""
    return bool(row_alerts(rows)) or high_score(rows)


def evaluate(
    predicted_rows: Iterable,
    truth_rows: Iterable,
    *,
    kinds: Mapping[str, str] | None = None,
    anomalies: Mapping[str, Iterable[str]] | None = None,
) -> Metrics:
    """Compare predicted allocation rows with the true ones, line by line.

    Every line of the truth counts; a line missing from the prediction is
    wrong and not automatic. `kinds` breaks the figures down by payment
    kind; `anomalies` gives each line's true anomaly reasons (lines absent
    from it have none).
    """
    predicted = group_rows([as_row(row) for row in predicted_rows])
    truth = group_rows([as_row(row) for row in truth_rows])
    kinds = kinds or {}
    anomalies = anomalies or {}

    overall = KindMetrics()
    by_kind: dict[str, KindMetrics] = defaultdict(KindMetrics)
    wrong: list[str] = []
    tally = _AnomalyTally()
    for line_ref, true_rows in truth.items():
        rows = predicted.get(line_ref, [])
        right = bool(rows) and truth_key(rows) == truth_key(true_rows)
        auto = bool(rows) and rows[0].get("decision") == "auto"
        for counter in (overall, by_kind[kinds.get(line_ref, "")]):
            _count(counter, right=right, auto=auto)
        if not right:
            wrong.append(line_ref)
        tally.add(rows, set(anomalies.get(line_ref, ())))

    if not kinds:
        by_kind = {}
    return Metrics(
        overall=overall,
        duplicates=tally.rate(tally.recall, "duplicate"),
        false_alarms=Rate(tally.flagged_normal, tally.normal),
        by_kind=dict(sorted(by_kind.items())),
        wrong=wrong,
        anomalies=tally.metrics(),
    )


@dataclass
class _AnomalyTally:
    """Counts behind the anomaly figures, one line at a time."""

    normal: int = 0
    flagged_normal: int = 0
    truths: Counter = field(default_factory=Counter)
    recall: Counter = field(default_factory=Counter)
    named: Counter = field(default_factory=Counter)
    alarms: Counter = field(default_factory=Counter)

    def add(self, rows: list[dict], true_reasons: set[str]) -> None:
        alerts = row_alerts(rows)
        flagged = bool(alerts) or high_score(rows)
        true_alerts = true_reasons & set(ALERTS)
        for kind in true_alerts:
            self.truths[kind] += 1
            self.recall[kind] += flagged
            self.named[kind] += kind in alerts
        if true_alerts:
            return
        self.normal += 1
        self.flagged_normal += flagged
        for reason in alerts:
            self.alarms[reason] += 1
        if not alerts and high_score(rows):
            self.alarms["score"] += 1

    def rate(self, counts: Counter, kind: str) -> Rate:
        return Rate(counts[kind], self.truths[kind])

    def metrics(self) -> AnomalyMetrics:
        return AnomalyMetrics(
            recall={kind: self.rate(self.recall, kind) for kind in ALERTS},
            named={kind: self.rate(self.named, kind) for kind in ALERTS},
            false_alarms={
                reason: Rate(self.alarms[reason], self.normal)
                for reason in (*ALERTS, "score")
            },
        )


def _count(counter: KindMetrics, *, right: bool, auto: bool) -> None:
    counter.lines += 1
    counter.right += right
    counter.auto += auto
    counter.auto_right += right and auto
