"""A bank reversal (MT940 RC) cancels its credit, allocated or not."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.tables import (
    Allocation,
    AuditEvent,
    ReviewTask,
    SalesOrder,
    StatementLine,
)
from service import booking, master
from service.booking import Part
from service.imports import import_bytes
from service.index import IndexCache
from service.matching import match_lines
from service.serving import current_model
from service.settings import Settings

CREDIT = ":61:2502030203C187,35NTRFSO-8001//BREF-0100\n:86:SO-8001\n"
REVERSAL = ":61:2502040204RC187,35NTRFSO-8001//BREF-0101\n:86:RETURN OF SO-8001\n"


def _mt940(statement_id: str, body: str, opening: str, closing: str) -> bytes:
    return (
        f":20:{statement_id}\n:25:CN0012345678\n:28C:1/1\n"
        f":60F:C250201CNY{opening}\n{body}:62F:C250204CNY{closing}\n-\n"
    ).encode()


BOTH = _mt940("STMT-B", CREDIT + REVERSAL, "640,00", "640,00")
CREDIT_ONLY = _mt940("STMT-B1", CREDIT, "640,00", "827,35")
REVERSAL_ONLY = _mt940("STMT-B2", REVERSAL, "827,35", "640,00")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path)


def _import(engine, settings, data: bytes, name: str) -> None:
    with session_scope(engine) as session:
        import_bytes(session, data, settings, file_name=name, actor="tester")


def _match(engine, settings, refs: list[str], index_cache=None) -> dict[str, list]:
    """Match the stored lines with these references, in this order.

    Returns each line's reasons, by line reference.
    """
    with session_scope(engine) as session:
        lines = [_line(session, ref) for ref in refs]
        outcomes = match_lines(
            session,
            lines,
            current_model(session, settings),
            settings,
            index_cache=index_cache,
        )
        return {o.line.line_ref: o.reasons for o in outcomes}


def _line(session: Session, ref: str) -> StatementLine:
    query = select(StatementLine).where(StatementLine.line_ref == ref)
    return session.exec(query).one()


def _status(engine, ref: str) -> str:
    with Session(engine) as session:
        return _line(session, ref).status


def _tasks(engine, ref: str, status: str) -> list[ReviewTask]:
    with Session(engine) as session:
        line = _line(session, ref)
        query = select(ReviewTask).where(
            ReviewTask.line_id == line.id, ReviewTask.status == status
        )
        return list(session.exec(query).all())


def _reversal_events(engine) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == "bank_reversal")
        return list(session.exec(query).all())


def test_reversal_later_closes_unmatched_credit(engine, settings):
    _import(engine, settings, CREDIT_ONLY, "b1.sta")
    _match(engine, settings, ["BREF-0100"])
    assert _status(engine, "BREF-0100") == "unmatched"
    [task] = _tasks(engine, "BREF-0100", "open")

    _import(engine, settings, REVERSAL_ONLY, "b2.sta")
    reasons = _match(engine, settings, ["BREF-0101"])

    assert _status(engine, "BREF-0101") == "reversal"
    assert _status(engine, "BREF-0100") == "reversed"
    assert _tasks(engine, "BREF-0100", "open") == []
    assert (
        "bank reversal of line BREF-0100; it had no allocations"
        in (reasons["BREF-0101"])
    )
    [closed] = _tasks(engine, "BREF-0100", "closed")
    assert closed.id == task.id
    assert closed.decided_by == "matcher"
    [event] = _reversal_events(engine)
    assert event.detail["line_ref"] == "BREF-0100"
    assert event.detail["reversal_line_ref"] == "BREF-0101"
    assert event.detail["previous_status"] == "unmatched"
    assert event.detail["review_tasks_closed"] == [task.id]


@pytest.mark.parametrize("shared_index", [False, True], ids=["batch", "service"])
@pytest.mark.parametrize(
    "refs",
    [["BREF-0100", "BREF-0101"], ["BREF-0101", "BREF-0100"]],
    ids=["credit-first", "reversal-first"],
)
def test_reversal_same_batch_leaves_no_task(engine, settings, refs, shared_index):
    _import(engine, settings, BOTH, "b.sta")

    reasons = _match(engine, settings, refs, IndexCache() if shared_index else None)

    assert _status(engine, "BREF-0101") == "reversal"
    assert _status(engine, "BREF-0100") == "reversed"
    assert _tasks(engine, "BREF-0100", "open") == []
    assert _tasks(engine, "BREF-0101", "open") == []
    assert len(_reversal_events(engine)) == 1
    assert (
        "bank reversal of line BREF-0100; it had no allocations"
        in (reasons["BREF-0101"])
    )
    if refs[0] == "BREF-0101":
        assert "cancelled by a bank reversal" in reasons["BREF-0100"]
    with Session(engine) as session:
        credit = _line(session, "BREF-0100")
        allocations = session.exec(
            select(Allocation).where(Allocation.line_id == credit.id)
        ).all()
    assert [a.status for a in allocations if a.status != "rejected"] == []


def test_reversal_of_allocated_credit_reopens_order(engine, settings):
    with session_scope(engine) as session:
        master.upsert_customers(session, [CustomerRecord("C1", "上海远景贸易有限公司")])
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-8001",
                    "C1",
                    date(2025, 2, 1),
                    Decimal("187.35"),
                    Decimal("187.35"),
                )
            ],
        )
    _import(engine, settings, CREDIT_ONLY, "b1.sta")
    with session_scope(engine) as session:
        credit = _line(session, "BREF-0100")
        booking.confirm(
            session,
            credit,
            [Part("order", Decimal("187.35"), "C1", "SO-8001")],
            actor="clerk-a",
        )

    _import(engine, settings, REVERSAL_ONLY, "b2.sta")
    reasons = _match(engine, settings, ["BREF-0101"])

    assert _status(engine, "BREF-0100") == "reversed"
    assert _tasks(engine, "BREF-0100", "open") == []
    assert (
        "bank reversal of line BREF-0100; its allocations reversed"
        in (reasons["BREF-0101"])
    )
    assert _reversal_events(engine) == []
    with Session(engine) as session:
        order = session.get(SalesOrder, "SO-8001")
    assert order.open_amount == Decimal("187.35")
    assert order.status == "open"


def test_reversal_without_credit_changes_nothing(engine, settings):
    _import(engine, settings, REVERSAL_ONLY, "b2.sta")

    reasons = _match(engine, settings, ["BREF-0101"])

    assert _status(engine, "BREF-0101") == "reversal"
    assert (
        "bank reversal; no earlier credit of this amount found"
        in (reasons["BREF-0101"])
    )
    assert _reversal_events(engine) == []


def test_reversed_credit_not_cancelled_twice(engine, settings):
    _import(engine, settings, BOTH, "b.sta")
    _match(engine, settings, ["BREF-0100", "BREF-0101"])
    again = _mt940(
        "STMT-C",
        ":61:2502050205RC187,35NTRFSO-8001//BREF-0102\n:86:RETURN AGAIN\n",
        "640,00",
        "452,65",
    )
    _import(engine, settings, again, "c.sta")

    reasons = _match(engine, settings, ["BREF-0102"])

    assert _status(engine, "BREF-0102") == "reversal"
    assert (
        "bank reversal; no earlier credit of this amount found"
        in (reasons["BREF-0102"])
    )
    assert len(_reversal_events(engine)) == 1
