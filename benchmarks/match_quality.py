"""Match quality of Cashmatch and of the baseline on a generated case.

Generates a synthetic company, trains on its labelled history, matches its
statement and, in the same run, matches it with the rule-based baseline.
Prints allocation accuracy, automation rate, precision of automatic
decisions with its Wilson 95 % interval, duplicate recall and false alarms
for both, and their ratios. Then come the figures per payment kind, per
alert the share of true anomalies flagged and of normal lines flagged, per
note the share of true lines noted and of other lines noted, the matching
speed and the peak memory of the process.

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
from collections import defaultdict

from features.text import normalize_account
from matcher.baseline import baseline_match
from matcher.index import MatchSettings
from matcher.pipeline import Matcher, allocation_rows
from models.money import to_cents
from training.case import train_from_history
from training.metrics import Metrics, Rate, evaluate
from training.synthetic import generate_case

NOTED = ("unidentified", "amount_mismatch", "new_account", "unused_balance")


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
    _print_notes(note_truths(case), results)
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


def note_truths(case) -> dict[str, set[str]]:
    """Return, per anomaly note, the statement lines that carry it in truth.

    - unidentified: money in that belongs to no customer;
    - amount_mismatch: money in that no order takes in full (a balance part,
      or no customer at all);
    - new_account: money in from an account that neither the customer master
      nor any earlier line of that customer showed;
    - unused_balance: money in from a customer whose true balance has been
      above zero for longer than the matcher's unused-balance days.
    """
    truth = defaultdict(list)
    for row in case.truth:
        truth[row.line_ref].append(row)
    known = defaultdict(set)
    for customer in case.data.customers:
        known[customer.customer_id].update(
            normalize_account(a) for a in customer.bank_accounts
        )
    history_truth = defaultdict(list)
    for row in case.data.history_allocations:
        history_truth[row.line_ref].append(row)
    for line in case.data.history_lines:
        _remember_account(known, line, history_truth[line.line_ref])

    balances = _Balances()
    for line in sorted(case.data.history_lines, key=_line_order):
        balances.book(line, history_truth[line.line_ref])

    found: dict[str, set[str]] = {name: set() for name in NOTED}
    for line in sorted(case.data.statement_lines, key=_line_order):
        rows = truth[line.line_ref]
        customer = next((r.customer_id for r in rows if r.customer_id), "")
        if line.amount > 0:
            if not customer:
                found["unidentified"].add(line.line_ref)
            if not customer or any(r.target == "balance" for r in rows):
                found["amount_mismatch"].add(line.line_ref)
            account = normalize_account(line.counterparty_account or "")
            if customer and account and account not in known[customer]:
                found["new_account"].add(line.line_ref)
            if customer and balances.unused(customer, line.booking_date):
                found["unused_balance"].add(line.line_ref)
        _remember_account(known, line, rows)
        balances.book(line, rows)
    return found


def _line_order(line):
    return (line.booking_date, line.line_ref)


class _Balances:
    """The true prepayment balances, and the day each last rose above zero."""

    def __init__(self) -> None:
        self.cents: dict[str, int] = defaultdict(int)
        self.since: dict[str, object] = {}

    def book(self, line, rows) -> None:
        for row in rows:
            if row.target != "balance" or not row.customer_id:
                continue
            before = self.cents[row.customer_id]
            self.cents[row.customer_id] = before + to_cents(row.amount)
            if before <= 0 < self.cents[row.customer_id]:
                self.since[row.customer_id] = line.booking_date

    def unused(self, customer: str, day) -> bool:
        since = self.since.get(customer)
        if since is None or self.cents[customer] <= 0:
            return False
        return (day - since).days > MatchSettings().unused_balance_days


def _remember_account(known, line, rows) -> None:
    customer = next((r.customer_id for r in rows if r.customer_id), "")
    account = normalize_account(line.counterparty_account or "")
    if customer and account and line.amount > 0:
        known[customer].add(account)


def _print_notes(truths: dict[str, set[str]], results) -> None:
    """Print, per note, how many true lines carry it and how many others do."""
    money_in = [r for r in results if r.line.amount > 0]
    print(f"{'note':18s} {'true lines':>10s} {'noted':>8s}  {'on other lines':>15s}")
    for name in NOTED:
        true_refs = truths[name]
        noted = {r.line.line_ref for r in money_in if name in r.anomaly_reasons}
        hits = Rate(len(noted & true_refs), len(true_refs))
        others = Rate(len(noted - true_refs), len(money_in) - len(true_refs))
        print(
            f"{name:18s} {hits.total:>10d} {_percent(hits):>8s}  "
            f"{others.hits:>5d} ({_percent(others)})"
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
