"""A `cashmatch import` killed while it writes leaves the database as it was."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from models.db import make_engine
from models.tables import AuditEvent, BankAccount, ImportBatch, StatementLine

LINES = 20_000
WAIT_SECONDS = 180


def _write_statement(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(
            "line_ref,booking_date,amount,currency,counterparty_name,"
            "counterparty_account,memo,bank_reference\n"
        )
        for i in range(lines):
            handle.write(
                f"L{i},2025-03-{1 + i % 28:02d},{100 + i % 977}.{i % 100:02d},"
                f"CNY,Payer {i % 313},62220{i % 9999:04d},SO-{i},B{i}\n"
            )


def _cashmatch() -> list[str]:
    script = Path(sys.executable).with_name("cashmatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "service.cli"]


def _start_import(path: Path, database_url: str, data_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CASHMATCH_DATABASE_URL": database_url,
        "CASHMATCH_DATA_DIR": str(data_dir),
    }
    return subprocess.Popen(
        [*_cashmatch(), "--verbose", "import", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_output(process: subprocess.Popen, marker: str) -> list[str]:
    """Return stderr lines up to the first that contains `marker`."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        line = lines.get(timeout=WAIT_SECONDS)
        if line is None:
            raise AssertionError(f"import ended before {marker!r}:\n{''.join(seen)}")
        seen.append(line)
        if marker in line:
            return seen


def _counts(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return {
                table.__name__: session.exec(
                    select(func.count()).select_from(table)
                ).one()
                for table in (StatementLine, ImportBatch, BankAccount, AuditEvent)
            }
    finally:
        engine.dispose()


def test_import_killed_while_writing_is_all_or_nothing(database_url, tmp_path):
    path = tmp_path / "large.csv"
    _write_statement(path, LINES)
    data_dir = tmp_path / "data"

    process = _start_import(path, database_url, data_dir)
    try:
        _wait_for_output(process, f"wrote lines 1-1000 of {LINES}")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=WAIT_SECONDS)

    counts = _counts(database_url)
    assert process.returncode == -signal.SIGKILL
    if counts["StatementLine"] == 0:
        assert counts == {
            "StatementLine": 0,
            "ImportBatch": 0,
            "BankAccount": 0,
            "AuditEvent": 0,
        }
    else:
        # The kill came after the commit: then every line is there.
        assert counts["StatementLine"] == LINES
        assert counts["ImportBatch"] == 1

    rerun = _start_import(path, database_url, data_dir)
    output, errors = rerun.communicate(timeout=WAIT_SECONDS)
    assert rerun.returncode == 0, errors
    assert _counts(database_url)["StatementLine"] == LINES
    assert f"{LINES} lines" in output
