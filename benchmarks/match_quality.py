"""Match quality of Cashmatch and of the baseline on a generated case.

Generates a synthetic company, trains on its labelled history, matches its
statement and, in the same run, matches it with the rule-based baseline.
Prints allocation accuracy, automation rate, precision of automatic
decisions with its Wilson 95 % interval, duplicate recall and false alarms
for both, and their ratios. Then come the figures per payment kind, per
alert the share of true anomalies flagged and of normal lines flagged, the
matching speed and the peak memory of the process.

    .venv/bin/python benchmarks/match_quality.py --seed 1
    .venv/bin/python benchmarks/match_quality.py --seed 2 --vocabulary north
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import resource
import time

from matcher.baseline import baseline_match
from matcher.pipeline import Matcher, allocation_rows
from training.case import train_from_history
from training.metrics import Metrics, Rate, evaluate
from training.synthetic import generate_case


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument(
        "--customers", type=int, default=300, help="number of customers"
    )
    parser.add_argument(
        "--open-orders",
        type=int,
        default=5000,
        help="orders open at the export, 5 to 50 per customer",
    )
    parser.add_argument(
        "--lines", type=int, default=3000, help="statement lines to match"
    )
    parser.add_argument(
        "--history-lines",
        type=int,
        default=3000,
        help="labelled past lines to train on",
    )
    parser.add_argument(
        "--vocabulary",
        default="default",
        help="word lists for names and memos: default or north",
    )
    parser.add_argument("--verbose", action="store_true", help="log training progress")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    started = time.perf_counter()
    case = generate_case(
        seed=args.seed,
        customers=args.customers,
        open_orders=args.open_orders,
        lines=args.lines,
        history_lines=args.history_lines,
        vocabulary=args.vocabulary,
    )
    generated = time.perf_counter()

    # The two steps of run_case, timed apart: training on the history, then
    # matching the statement against the index the history left.
    model, index = train_from_history(case.data)
    trained = time.perf_counter()
    cpu_before = time.process_time()
    results = Matcher(index, model).match_batch(case.data.statement_lines)
    matched = time.perf_counter()
    match_cpu = time.process_time() - cpu_before
    baseline_rows = baseline_match(case.data)
    baseline_done = time.perf_counter()

    ours = evaluate(
        allocation_rows(results), case.truth, kinds=case.kinds, anomalies=case.anomalies
    )
    baseline = evaluate(
        baseline_rows, case.truth, kinds=case.kinds, anomalies=case.anomalies
    )
    _print_setup(args, case, model)
    _print_overall(ours, baseline)
    _print_kinds(ours, baseline)
    _print_anomalies(ours)
    lines = len(case.data.statement_lines)
    _print_cost(
        generate=generated - started,
        train=trained - generated,
        match=matched - trained,
        match_cpu=match_cpu,
        baseline=baseline_done - matched,
        lines=lines,
    )


def _print_setup(args, case, model) -> None:
    data = case.data
    open_orders = sum(1 for o in data.orders if o.status in ("open", "partly_paid"))
    print(
        f"case: seed {args.seed}, vocabulary {args.vocabulary}, "
        f"{len(data.customers)} customers, {open_orders} open orders, "
        f"{len(data.invoices)} invoices, {len(data.history_lines)} history lines, "
        f"{len(data.statement_lines)} statement lines"
    )
    print(
        f"model {model.version}: threshold {model.threshold:.3f}, validation top-1 "
        f"{model.metrics.get('validation_top1_accuracy', float('nan')):.3f}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}"
    )
    print()


def _percent(rate: Rate) -> str:
    return "-" if not rate.total else f"{100 * rate.value:.1f} %"


def _ratio(ours: Rate, baseline: Rate) -> str:
    if not ours.total or not baseline.total or baseline.value == 0:
        return "-"
    return f"{ours.value / baseline.value:.2f}"


def _interval(rate: Rate) -> str:
    if not rate.total:
        return "-"
    low, high = rate.interval
    return f"{100 * low:.1f}-{100 * high:.1f} %"


def _print_overall(ours: Metrics, baseline: Metrics) -> None:
    rows = [
        ("allocation accuracy", ours.accuracy, baseline.accuracy),
        ("automation rate", ours.automation, baseline.automation),
        ("precision of auto", ours.precision, baseline.precision),
        ("duplicate recall", ours.duplicates, baseline.duplicates),
        ("false alarms", ours.false_alarms, baseline.false_alarms),
    ]
    print(f"{'metric':22s} {'Cashmatch':>10s} {'baseline':>10s} {'ratio':>7s}")
    for name, mine, theirs in rows:
        print(
            f"{name:22s} {_percent(mine):>10s} {_percent(theirs):>10s} "
            f"{_ratio(mine, theirs):>7s}"
        )
    print(
        f"{'precision 95 % CI':22s} {_interval(ours.precision):>10s} "
        f"{_interval(baseline.precision):>10s}"
    )
    print(
        f"{'auto lines (right)':22s} "
        f"{f'{ours.precision.total} ({ours.precision.hits})':>10s} "
        f"{f'{baseline.precision.total} ({baseline.precision.hits})':>10s}"
    )
    print()


def _print_kinds(ours: Metrics, baseline: Metrics) -> None:
    print(
        f"{'payment kind':18s} {'lines':>5s}  {'accuracy':>15s}  {'automation':>15s}"
        f"  {'precision of auto':>17s}"
    )
    print(
        f"{'':18s} {'':>5s}  {'ours / baseline':>15s}  {'ours / baseline':>15s}"
        f"  {'ours / baseline':>17s}"
    )
    for kind, mine in ours.by_kind.items():
        theirs = baseline.by_kind[kind]
        print(
            f"{kind:18s} {mine.lines:5d}  "
            f"{_pair(mine.accuracy, theirs.accuracy):>15s}  "
            f"{_pair(mine.automation, theirs.automation):>15s}  "
            f"{_pair(mine.precision, theirs.precision):>17s}"
        )
    print()


def _pair(mine: Rate, theirs: Rate) -> str:
    def short(rate: Rate) -> str:
        return "-" if not rate.total else f"{100 * rate.value:.0f}"

    return f"{short(mine)} / {short(theirs)}"


def _print_anomalies(ours: Metrics) -> None:
    found = ours.anomalies
    print(
        f"{'alert':18s} {'true lines':>10s} {'flagged':>8s} {'named':>8s}  "
        f"{'on normal lines':>15s}"
    )
    for kind, recall in found.recall.items():
        named = found.named[kind]
        alarms = found.false_alarms[kind]
        print(
            f"{kind:18s} {recall.total:>10d} {_percent(recall):>8s} "
            f"{_percent(named):>8s}  {alarms.hits:>5d} ({_percent(alarms)})"
        )
    score = found.false_alarms["score"]
    print(
        f"{'score >= 0.5 only':18s} {'':>10s} {'':>8s} {'':>8s}  "
        f"{score.hits:>5d} ({_percent(score)})"
    )
    print()


def _print_cost(*, generate, train, match, match_cpu, baseline, lines) -> None:
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    speed = lines / match if match > 0 else math.inf
    per_core = lines / match_cpu if match_cpu > 0 else math.inf
    print(
        f"generate {generate:.1f} s, train {train:.1f} s, match {match:.1f} s "
        f"({speed:,.0f} lines/s; {per_core:,.0f} lines per CPU second), "
        f"baseline {baseline:.2f} s"
    )
    print(f"peak memory (max RSS of the process): {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
