"""Load benchmark of the HTTP API: latency and throughput of POST /v1/match.

Generates a company with `--open-orders` open orders, loads it into a fresh
database, and starts `cashmatch serve` on 127.0.0.1. Then it measures:

1. latency: single-line `POST /v1/match` requests, one at a time, each
   followed by a `GET /healthz` (a route that only runs SELECT 1), so both
   come from the same run; p50, p99 and max of each;
2. throughput: `--clients` concurrent clients posting single-line matches
   for `--seconds`, once per worker count in `--workers`;
3. accounting: every line that got status 200 is stored exactly once, and every
   stored line's confirmed allocations add up to its amount, to the cent.

With `--postgres-url` it creates a database of its own on that server and
drops it afterwards; without, it uses a SQLite file in a temporary folder.
Every request goes to 127.0.0.1, and every loop is bounded in count and
time.

    .venv/bin/python benchmarks/api_load.py \\
        --postgres-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, text
from sqlalchemy.engine import make_url
from sqlmodel import select

from models.db import make_engine, migrate, session_scope
from models.tables import Allocation, SalesOrder, StatementLine
from service import master
from service.auth import create_api_key
from training.synthetic import generate_case

HOST = "127.0.0.1"
BENCH_ACCOUNT = "bench"
BOOKED_TARGETS = ("order", "balance")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument(
        "--customers", type=int, default=4000, help="customers, 5 to 50 orders each"
    )
    parser.add_argument(
        "--open-orders", type=int, default=100_000, help="orders open at the export"
    )
    parser.add_argument(
        "--requests", type=int, default=50, help="timed requests per route"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="length of each throughput run"
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent clients in throughput runs"
    )
    parser.add_argument(
        "--workers",
        default="1,2",
        help="uvicorn worker counts to measure, comma-separated",
    )
    parser.add_argument(
        "--postgres-url",
        default="",
        help="server to create the benchmark database on; SQLite when empty",
    )
    parser.add_argument(
        "--cold-start-dir",
        type=Path,
        default=Path("data/models"),
        help="cache of the cold-start model, shared with `cashmatch serve`",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds a request may take"
    )
    return parser.parse_args(argv)


# The database ------------------------------------------------------------------


@contextmanager
def benchmark_database(postgres_url: str):
    """Yield the URL of a new database; drop it (or its folder) afterwards."""
    if not postgres_url:
        folder = Path(tempfile.mkdtemp(prefix="cashmatch-bench-"))
        try:
            yield f"sqlite:///{folder / 'cashmatch.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return

    name = f"cashmatch_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(postgres_url)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load_company(url: str, args: argparse.Namespace) -> tuple[str, list, float]:
    """Load customers and open orders; return an API key, the orders, seconds."""
    case = generate_case(
        seed=args.seed,
        customers=args.customers,
        open_orders=args.open_orders,
        lines=100,
        history_lines=100,
    )
    started = time.perf_counter()
    engine = make_engine(url)
    migrate(engine)
    with session_scope(engine) as session:
        master.upsert_customers(session, case.data.customers)
        master.upsert_orders(session, case.data.orders)
        key = create_api_key(session, "bench-erp", role="erp", actor="benchmark")
    engine.dispose()
    orders = [order for order in case.data.orders if order.open_amount > 0]
    return key, orders, time.perf_counter() - started


# The server ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def served(url: str, workers: int, args: argparse.Namespace, log_path: Path):
    """Run `cashmatch serve` on a free port of 127.0.0.1; yield its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "CASHMATCH_DATABASE_URL": url,
        "CASHMATCH_DATA_DIR": str(log_path.parent),
        "CASHMATCH_COLD_START_DIR": str(args.cold_start_dir.resolve()),
        "CASHMATCH_WEBHOOK_INTERVAL_SECONDS": "0",
    }
    command = [
        str(Path(sys.executable).with_name("cashmatch")),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with log_path.open("ab") as log_file:
        server = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
    base = f"http://{HOST}:{port}"
    try:
        wait_until_up(base, server, workers, timeout=600)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until_up(base: str, server: subprocess.Popen, workers: int, timeout: float):
    """Wait for enough /healthz responses to have reached every worker."""
    deadline = time.monotonic() + timeout
    healthy = 0
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline and healthy < 4 * workers:
            if server.poll() is not None:
                raise RuntimeError(f"cashmatch serve exited with {server.returncode}")
            try:
                healthy += client.get(f"{base}/healthz").status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
    if healthy < 4 * workers:
        raise RuntimeError(
            f"cashmatch serve did not respond within {timeout:.0f} s; see its log"
        )


# Requests ------------------------------------------------------------------------


@dataclass
class Posted:
    """Lines that got status 200, and failures by kind, shared by the clients."""

    lines: dict[str, Decimal] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def line_for(orders: list, number: int, prefix: str) -> dict:
    """Return a line that pays one open order in full and names it."""
    order = orders[(number * 7919) % len(orders)]
    return {
        "account": BENCH_ACCOUNT,
        "line_ref": f"{prefix}-{number}",
        "booking_date": "2026-01-15",
        "amount": f"{order.open_amount:.2f}",
        "memo": f"{order.order_id} 货款",
        "counterparty_name": "",
    }


def post_line(client, base, headers, line, posted: Posted) -> float:
    """POST one line, record it on status 200, and return the seconds taken."""
    started = time.perf_counter()
    try:
        response = client.post(
            f"{base}/v1/match", headers=headers, json={"lines": [line]}
        )
    except httpx.HTTPError as exc:
        with posted.lock:
            posted.failures[type(exc).__name__] += 1
        return time.perf_counter() - started
    elapsed = time.perf_counter() - started
    with posted.lock:
        if response.status_code == 200:
            posted.lines[line["line_ref"]] = Decimal(line["amount"])
        else:
            posted.failures[f"status {response.status_code}"] += 1
    return elapsed


def measure_latency(base, key, orders, args, posted) -> dict[str, list[float]]:
    """Time single-line matches and /healthz requests, interleaved."""
    headers = {"X-API-Key": key}
    timings: dict[str, list[float]] = {"match": [], "healthz": []}
    with httpx.Client(timeout=args.timeout) as client:
        for number in range(args.warmup + args.requests):
            started = time.perf_counter()
            client.get(f"{base}/healthz")
            health = time.perf_counter() - started
            line = line_for(orders, number, "latency")
            match = post_line(client, base, headers, line, posted)
            if number >= args.warmup:
                timings["healthz"].append(health)
                timings["match"].append(match)
    return timings


def measure_throughput(base, key, orders, args, posted, run: str) -> tuple[int, float]:
    """Post lines from concurrent clients for `--seconds`; return count, seconds."""
    headers = {"X-API-Key": key}
    deadline = time.monotonic() + args.seconds
    counter = iter(range(10**9))
    counter_lock = threading.Lock()
    done: list[int] = []

    def client_loop() -> None:
        sent = 0
        with httpx.Client(timeout=args.timeout) as client:
            while time.monotonic() < deadline:
                with counter_lock:
                    number = next(counter)
                line = line_for(orders, 100_000 + number, run)
                post_line(client, base, headers, line, posted)
                sent += 1
        done.append(sent)

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done), time.perf_counter() - started


# Accounting -----------------------------------------------------------------------


def check_accounting(url: str, posted: Posted) -> list[str]:
    """Return every line or cent that is not accounted for (empty when all are)."""
    problems = []
    engine = make_engine(url)
    with session_scope(engine) as session:
        stored = session.exec(
            select(StatementLine).where(StatementLine.account == BENCH_ACCOUNT)
        ).all()
        by_ref = Counter(line.line_ref for line in stored)
        problems += [f"{ref} stored {n} times" for ref, n in by_ref.items() if n != 1]
        problems += [
            f"{ref} got status 200 but is not stored"
            for ref in posted.lines.keys() - by_ref.keys()
        ]
        amounts = {line.line_ref: line.amount for line in stored}
        problems += [
            f"{ref} stored with {amounts[ref]}, posted with {amount}"
            for ref, amount in posted.lines.items()
            if ref in amounts and amounts[ref] != amount
        ]
        problems += _allocation_problems(session, stored)
        problems += _order_problems(session)
    engine.dispose()
    return problems


def _allocation_problems(session, stored) -> list[str]:
    booked = dict(
        session.exec(
            select(Allocation.line_id, func.sum(Allocation.amount))
            .where(
                Allocation.status == "confirmed",
                Allocation.target.in_(BOOKED_TARGETS),
            )
            .group_by(Allocation.line_id)
        ).all()
    )
    problems = []
    for line in stored:
        total = Decimal(booked.get(line.id) or 0)
        if line.status == "allocated" and total != line.amount:
            problems.append(f"{line.line_ref}: {total} booked of {line.amount}")
        if line.status != "allocated" and total != 0:
            problems.append(f"{line.line_ref} is {line.status} with {total} booked")
    return problems


def _order_problems(session) -> list[str]:
    taken = dict(
        session.exec(
            select(Allocation.order_id, func.sum(Allocation.amount))
            .where(
                Allocation.status == "confirmed",
                Allocation.target.in_(("order", "fee")),
            )
            .group_by(Allocation.order_id)
        ).all()
    )
    problems = []
    for order_id, amount in taken.items():
        order = session.get(SalesOrder, order_id)
        expected = order.erp_open_amount - Decimal(amount)
        if order.open_amount != expected or order.open_amount < 0:
            problems.append(
                f"order {order_id}: open {order.open_amount}, expected {expected}"
            )
    return problems


# Report -------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Return the nearest-rank percentile of `values` in milliseconds."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1000


def describe(name: str, values: list[float]) -> str:
    return (
        f"{name:<14} n={len(values):<4} p50 {percentile(values, 0.50):8.1f} ms  "
        f"p99 {percentile(values, 0.99):8.1f} ms  max {max(values) * 1000:8.1f} ms  "
        f"mean {statistics.fmean(values) * 1000:8.1f} ms"
    )


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    workers = [int(part) for part in args.workers.split(",") if part.strip()]
    posted = Posted()
    backend = "PostgreSQL" if args.postgres_url else "SQLite"
    print(f"machine: {machine()}")
    with benchmark_database(args.postgres_url) as url:
        key, orders, load_seconds = load_company(url, args)
        print(
            f"database: {backend}; {len(orders)} open orders of {args.customers} "
            f"customers loaded in {load_seconds:.1f} s"
        )
        log_path = Path(tempfile.mkdtemp(prefix="cashmatch-bench-log-")) / "serve.log"
        with served(url, 1, args, log_path) as base:
            timings = measure_latency(base, key, orders, args, posted)
        print("latency, one worker, one client:")
        print("  " + describe("POST /v1/match", timings["match"]))
        print("  " + describe("GET /healthz", timings["healthz"]))

        for count in workers:
            with served(url, count, args, log_path) as base:
                sent, seconds = measure_throughput(
                    base, key, orders, args, posted, f"w{count}"
                )
            print(
                f"throughput, {count} worker(s), {args.clients} clients: "
                f"{sent} lines in {seconds:.1f} s = {sent / seconds:.2f} lines/s"
            )

        problems = check_accounting(url, posted)
    failures = ", ".join(f"{n} {kind}" for kind, n in posted.failures.items())
    print(f"requests failed: {failures or 'none'}")
    total = sum(posted.lines.values(), Decimal("0.00"))
    print(
        f"accounting: {len(posted.lines)} lines got status 200, {total} posted; "
        f"{len(problems)} problems"
    )
    for problem in problems[:20]:
        print(f"  {problem}")
    print(f"server log: {log_path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
