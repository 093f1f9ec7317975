"""Time `cashmatch train` on a database of generated labelled lines.

Generates a company whose history has `--lines` labelled lines and stores
it in a fresh SQLite database (or the one given with `--database`). The
cold-start model then serves, and the training runs exactly as `cashmatch
train` runs it (`service.train.train_with_engine`). It reads the labels,
fits on the older lines, evaluates the new and the serving model on the
latest period, logs the run to a fresh MLflow store, and records the model.
Prints the wall time of each step, and the wall and CPU time of the run
(this process and its worker processes together).

    .venv/bin/python benchmarks/training_speed.py                 # 100,000 lines
    .venv/bin/python benchmarks/training_speed.py --lines 20000
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from ingest.records import ParsedStatement
from models.db import make_engine, migrate, session_scope
from service import master
from service.cases import History, StatementFile, store_history
from service.serving import current_model
from service.settings import Settings
from service.train import train_with_engine
from training.synthetic import generate_case

TARGET_SECONDS = 300.0
LINES_PER_CUSTOMER = 100
ORDERS_PER_CUSTOMER = 15


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lines", type=int, default=100_000, help="labelled lines in the history"
    )
    parser.add_argument("--seed", type=int, default=21, help="generator seed")
    parser.add_argument(
        "--database",
        help="database URL to fill; default a fresh SQLite file in a temporary folder",
    )
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
    with tempfile.TemporaryDirectory(prefix="cashmatch-bench-") as scratch:
        folder = Path(scratch)
        settings = Settings(
            data_dir=folder,
            database_url=args.database or f"sqlite:///{folder / 'cashmatch.db'}",
            mlflow_tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}",
        )
        engine = make_engine(settings.database_url)
        migrate(engine)
        started = time.perf_counter()
        stored = _fill(engine, settings, args)
        seconds = time.perf_counter() - started
        print(f"setup: {stored} labelled lines stored in {seconds:.0f} s")
        _train(engine, settings)
        engine.dispose()


def _fill(engine, settings: Settings, args) -> int:
    customers = max(50, args.lines // LINES_PER_CUSTOMER)
    case = generate_case(
        seed=args.seed,
        customers=customers,
        open_orders=customers * ORDERS_PER_CUSTOMER,
        lines=0,
        history_lines=args.lines,
    )
    data = case.data
    statement = ParsedStatement(
        file_name="history.csv",
        format="csv",
        lines=data.history_lines,
        account=settings.default_account,
    )
    digest = hashlib.sha256(f"history-{args.seed}-{args.lines}".encode()).hexdigest()
    history = History(
        StatementFile(Path("history.csv"), [statement], digest),
        data.history_allocations,
    )
    with session_scope(engine) as session:
        master.upsert_customers(session, data.customers)
        master.upsert_orders(session, data.orders)
        master.upsert_invoices(session, data.invoices)
        store_history(session, history, settings)
        current_model(session, settings)
    return sum(1 for line in data.history_lines if line.amount > 0)


def _train(engine, settings: Settings) -> None:
    wall = time.perf_counter()
    cpu = _cpu_seconds()
    result = train_with_engine(engine, settings, actor="benchmark")
    wall = time.perf_counter() - wall
    cpu = _cpu_seconds() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(result.summary())
    print()
    for step, seconds in result.seconds.items():
        print(f"{step:>20s} {seconds:8.1f} s wall")
    print(
        f"{'whole run':>20s} {wall:8.1f} s wall, {cpu:.1f} s CPU, peak {peak:.0f} MiB "
        f"(largest worker process {peak_worker:.0f} MiB)"
    )
    verdict = "within" if wall <= TARGET_SECONDS else "over"
    print(f"target: {TARGET_SECONDS:.0f} s wall for the whole run; {verdict}")


def _cpu_seconds() -> float:
    # Training runs parts in worker processes; their CPU time counts once
    # they have ended, which they have by the time training returns.
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


if __name__ == "__main__":
    main()
