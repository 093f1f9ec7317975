"""Matching speed of Cashmatch as the open orders grow, in one process.

Trains one model on a generated case. Then, for each size, it generates a
company with that many open orders (more customers, each keeping 5 to 50
open orders), learns its payers from a labelled history and matches a
statement in one batch. It prints, per size, the CPU time and wall time per
line, lines per second per core (one thread, so CPU seconds are core
seconds) and the peak memory so far. Then the latency of single-line
matches (`Matcher.match(line, book=False)`, anomaly score included) at
the middle size, as p50 and p99.

    .venv/bin/python benchmarks/match_speed.py
    .venv/bin/python benchmarks/match_speed.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import resource
import statistics
import time

from matcher.pipeline import Matcher
from training.case import match_index, train_from_history
from training.synthetic import generate_case

# Open orders per customer in the generator average about 19, within the
# required 5 to 50.
ORDERS_PER_CUSTOMER = 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000],
        help="open orders of each company, smallest first",
    )
    parser.add_argument(
        "--lines", type=int, default=3000, help="statement lines per size"
    )
    parser.add_argument(
        "--history-lines",
        type=int,
        default=2000,
        help="labelled past lines each company learns its payers from",
    )
    parser.add_argument(
        "--single", type=int, default=1000, help="single-line matches to time"
    )
    parser.add_argument("--seed", type=int, default=11, help="generator seed")
    parser.add_argument("--verbose", action="store_true", help="log progress")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )

    model = _train(args)
    print(f"model {model.version}, trained on a case of 5,000 open orders")
    print()
    print(
        f"{'open orders':>12s} {'customers':>9s} {'lines':>6s} {'CPU/line':>9s} "
        f"{'wall/line':>9s} {'lines/s/core':>12s} {'peak MiB':>8s}"
    )
    per_line = {}
    middle = args.sizes[len(args.sizes) // 2]
    single = None
    for size in args.sizes:
        case = _company(args, size)
        index = match_index(case.data)
        cpu, wall = _match_batch(index, model, case.data.statement_lines)
        lines = len(case.data.statement_lines)
        per_line[size] = cpu / lines
        print(
            f"{size:>12,d} {len(case.data.customers):>9,d} {lines:>6,d} "
            f"{1e6 * cpu / lines:>7,.0f}us {1e6 * wall / lines:>7,.0f}us "
            f"{lines / cpu:>12,.0f} {_peak_mib():>8,.0f}"
        )
        if size == middle:
            single = _time_single(match_index(case.data), model, case, args.single)
        del case, index
        gc.collect()

    smallest, largest = args.sizes[0], args.sizes[-1]
    if smallest != largest:
        ratio = per_line[largest] / per_line[smallest]
        print(
            f"\nCPU time per line at {largest:,} open orders is {ratio:.2f}x "
            f"that at {smallest:,}"
        )
    if single is not None:
        p50, p99 = single
        print(
            f"single-line match at {middle:,} open orders: p50 {p50:.2f} ms, "
            f"p99 {p99:.2f} ms (wall time, {args.single} lines, book=False)"
        )


def _train(args):
    case = generate_case(
        seed=args.seed, customers=250, open_orders=5000, lines=0, history_lines=3000
    )
    model, _ = train_from_history(case.data)
    return model


def _company(args, size: int):
    return generate_case(
        seed=args.seed + size,
        customers=max(1, size // ORDERS_PER_CUSTOMER),
        open_orders=size,
        lines=args.lines,
        history_lines=args.history_lines,
    )


def _match_batch(index, model, lines) -> tuple[float, float]:
    matcher = Matcher(index, model)
    # Warm-up outside the timing: jieba loads its dictionary on first use.
    Matcher(index, model).match(lines[0], book=False)
    started_cpu, started = time.process_time(), time.perf_counter()
    matcher.match_batch(lines)
    return time.process_time() - started_cpu, time.perf_counter() - started


def _time_single(index, model, case, count: int) -> tuple[float, float]:
    matcher = Matcher(index, model)
    lines = case.data.statement_lines[:count]
    timings = []
    for line in lines:
        started = time.perf_counter()
        matcher.match(line, book=False)
        timings.append(1000 * (time.perf_counter() - started))
    timings.sort()
    p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
    return statistics.median(timings), p99


def _peak_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
