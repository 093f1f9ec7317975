"""Reports: ageing, unmatched money, anomalies, reminders, reconciliation."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from ingest.records import CustomerRecord, OrderRecord, ParsedStatement, StatementRecord
from models.db import session_scope
from models.tables import LedgerEntry, StatementLine
from service import booking, controls, ledger, master, reports, review
from service.booking import Part
from service.exports import csv_text
from service.imports import lines_for_keys, store_statements
from service.settings import Settings

AS_OF = date(2025, 8, 31)


def _customers(engine) -> None:
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [
                CustomerRecord("C1", "恒达机械有限公司"),
                CustomerRecord("C2", '=HYPERLINK("http://x.invalid")'),
            ],
        )
        master.upsert_orders(
            session,
            [
                OrderRecord(
                    "SO-1", "C1", date(2025, 5, 1), Decimal("300.00"), Decimal("300.00")
                ),
                OrderRecord(
                    "SO-2", "C2", date(2025, 5, 1), Decimal("100.00"), Decimal("100.00")
                ),
            ],
        )


def _record(ref: str, day: str, amount: str, memo: str = "") -> StatementRecord:
    return StatementRecord(
        line_ref=ref,
        booking_date=date.fromisoformat(day),
        amount=Decimal(amount),
        currency="CNY",
        memo=memo,
        bank_id=ref,
    )


def _import(
    engine, records, *, opening=None, closing=None, closing_date=None, account="BANK-1"
):
    statement = ParsedStatement(
        file_name="statement.sta",
        format="mt940",
        lines=list(records),
        account=account,
        currency="CNY",
        opening_balance=None if opening is None else Decimal(opening),
        closing_balance=None if closing is None else Decimal(closing),
        closing_date=None if closing_date is None else date.fromisoformat(closing_date),
    )
    with session_scope(engine) as session:
        report = store_statements(
            session,
            [statement],
            Settings(),
            file_name=f"statement-{records[0].line_ref}.sta",
            file_sha256=records[0].line_ref,
        )
        return {
            line.line_ref: line.id for line in lines_for_keys(session, report.line_keys)
        }


def _book(engine, line_id: int, *parts: Part) -> None:
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.confirm(session, line, list(parts), actor="clerk-a")


def _mark(engine, line_id: int, **values) -> None:
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        for name, value in values.items():
            setattr(line, name, value)
        session.add(line)


def _money(text: str) -> Decimal:
    return Decimal(text)


# Balances and ageing ----------------------------------------------------------------


def test_reports_balances_aged_first_in_first_out(engine):
    _customers(engine)
    ids = _import(
        engine,
        [
            _record("A1", "2025-04-15", "100.00"),
            _record("A2", "2025-07-20", "200.00"),
            _record("A3", "2025-08-25", "50.00"),
        ],
    )
    for ref in ("A1", "A2", "A3"):
        amount = {"A1": "100.00", "A2": "200.00", "A3": "50.00"}[ref]
        _book(engine, ids[ref], Part("balance", _money(amount), "C1"))
    with session_scope(engine) as session:
        ledger.apply_balance(
            session,
            customer_id="C1",
            amount=_money("150.00"),
            actor="clerk-a",
            today=AS_OF,
            order_id="SO-1",
        )

    with Session(engine) as session:
        [row] = reports.balance_rows(session, as_of=AS_OF)

    assert row["customer_id"] == "C1"
    assert row["balance"] == _money("200.00")
    assert row["days_0_30"] == _money("50.00")
    assert row["days_31_60"] == _money("150.00")
    assert row["days_61_90"] == _money("0.00")
    assert row["days_over_90"] == _money("0.00")
    assert row["oldest_day"] == "2025-07-20"
    assert row["age_days"] == 42


def _seed_dated_balances(engine) -> None:
    """C1 gets 100.00 on 2025-04-15, uses 60.00 on 2025-05-20, gets 812.00 later."""
    _customers(engine)
    ids = _import(
        engine,
        [
            _record("A1", "2025-04-15", "100.00"),
            _record("A2", "2025-06-10", "812.00"),
            _record("A3", "2025-06-12", "40.00"),
        ],
    )
    _book(engine, ids["A1"], Part("balance", _money("100.00"), "C1"))
    _book(engine, ids["A2"], Part("balance", _money("812.00"), "C1"))
    _book(engine, ids["A3"], Part("balance", _money("40.00"), "C2"))
    with session_scope(engine) as session:
        ledger.apply_balance(
            session,
            customer_id="C1",
            amount=_money("60.00"),
            actor="clerk-a",
            today=date(2025, 5, 20),
            order_id="SO-1",
        )


def _balance_summary(engine, as_of: date) -> list[tuple]:
    with Session(engine) as session:
        rows = reports.balance_rows(session, as_of=as_of)
    return [
        (row["customer_id"], row["balance"], row["oldest_day"], row["age_days"])
        for row in rows
    ]


def test_reports_balances_leave_out_later_money(engine):
    _seed_dated_balances(engine)

    with Session(engine) as session:
        [row] = reports.balance_rows(session, as_of=date(2025, 5, 1))

    assert row["customer_id"] == "C1"
    assert row["balance"] == _money("100.00")
    assert row["days_0_30"] == _money("100.00")
    assert row["days_31_60"] == _money("0.00")
    assert row["oldest_day"] == "2025-04-15"
    assert row["age_days"] == 16


def test_reports_balances_on_each_day(engine):
    _seed_dated_balances(engine)

    before = _balance_summary(engine, date(2025, 4, 14))
    after_use = _balance_summary(engine, date(2025, 5, 31))
    after_receipts = _balance_summary(engine, date(2025, 6, 12))

    assert before == []
    assert after_use == [("C1", _money("40.00"), "2025-04-15", 46)]
    assert after_receipts == [
        ("C1", _money("852.00"), "2025-04-15", 58),
        ("C2", _money("40.00"), "2025-06-12", 0),
    ]


@pytest.mark.parametrize(
    ("age", "bucket"),
    [
        pytest.param(0, "days_0_30", id="today"),
        pytest.param(30, "days_0_30", id="30"),
        pytest.param(31, "days_31_60", id="31"),
        pytest.param(90, "days_61_90", id="90"),
        pytest.param(91, "days_over_90", id="91"),
    ],
)
def test_reports_bucket_edges(age, bucket):
    assert reports.bucket_of(age) == bucket


# Anomalies and reminders ---------------------------------------------------------------


def test_reports_unused_balance_anomaly(engine):
    _customers(engine)
    ids = _import(
        engine,
        [_record("A1", "2025-05-01", "400.00"), _record("A2", "2025-08-20", "60.00")],
    )
    _book(engine, ids["A1"], Part("balance", _money("400.00"), "C1"))
    _book(engine, ids["A2"], Part("balance", _money("60.00"), "C1"))

    with Session(engine) as session:
        found = reports.customer_anomalies(session, as_of=AS_OF, unused_days=60)
        later = reports.customer_anomalies(
            session, as_of=date(2025, 6, 15), unused_days=60
        )

    [anomaly] = found
    assert (anomaly.customer_id, anomaly.kind) == ("C1", "unused_balance")
    assert anomaly.amount == _money("400.00")
    assert anomaly.age_days == 122
    assert "unused for more than 60 days" in anomaly.detail
    assert later == []


def test_reports_unused_balance_as_of_earlier_day(engine):
    _seed_dated_balances(engine)

    with Session(engine) as session:
        found = reports.customer_anomalies(
            session, as_of=date(2025, 5, 1), unused_days=10
        )
        reminders = reports.reminder_rows(
            session, as_of=date(2025, 5, 1), unused_days=10
        )

    [anomaly] = found
    assert (anomaly.customer_id, anomaly.kind) == ("C1", "unused_balance")
    assert anomaly.amount == _money("100.00")
    assert anomaly.age_days == 16
    assert [(row["customer_id"], row["amount"]) for row in reminders] == [
        ("C1", _money("100.00"))
    ]


def test_reports_duplicate_awaiting_refund(engine):
    _customers(engine)
    ids = _import(
        engine,
        [_record("A1", "2025-08-01", "300.00"), _record("A2", "2025-08-03", "300.00")],
    )
    _book(engine, ids["A1"], Part("order", _money("300.00"), "C1", "SO-1"))
    _mark(
        engine,
        ids["A2"],
        status="refund",
        anomaly_reasons=["duplicate"],
        suggestion={"candidates": [{"customer_id": "C1"}]},
    )

    with Session(engine) as session:
        [anomaly] = reports.customer_anomalies(session, as_of=AS_OF, unused_days=60)
        rows = reports.reminder_rows(session, as_of=AS_OF, unused_days=60)

    assert (anomaly.kind, anomaly.amount, anomaly.line_refs) == (
        "duplicate",
        _money("300.00"),
        ["A2"],
    )
    assert [
        (r["kind"], r["customer_id"], r["amount"], r["age_days"]) for r in rows
    ] == [("duplicate", "C1", _money("300.00"), 28)]


def test_reports_refunded_duplicate_leaves_reminders(engine):
    _customers(engine)
    ids = _import(
        engine,
        [
            _record("A2", "2025-08-03", "300.00"),
            _record("OUT", "2025-08-10", "-300.00"),
        ],
    )
    _mark(engine, ids["A2"], status="refund", customer_id="C1")
    with session_scope(engine) as session:
        controls.request_refund(
            session,
            customer_id="C1",
            amount=_money("300.00"),
            actor="clerk-a",
            limit=_money("1000.00"),
            today=AS_OF,
            source_line_id=ids["A2"],
            payment_line_id=ids["OUT"],
        )

    with Session(engine) as session:
        rows = reports.reminder_rows(session, as_of=AS_OF, unused_days=60)

    assert rows == []


def test_reports_duplicate_on_balance(engine):
    _customers(engine)
    ids = _import(engine, [_record("A1", "2025-08-01", "120.00")])
    _mark(engine, ids["A1"], anomaly_reasons=["duplicate"])
    _book(engine, ids["A1"], Part("balance", _money("120.00"), "C1"))

    with Session(engine) as session:
        [row] = reports.duplicates_awaiting_refund(session, as_of=AS_OF)

    assert (row["line_ref"], row["amount"], row["state"]) == (
        "A1",
        _money("120.00"),
        "on balance",
    )


def test_reports_over_advance_anomaly(engine):
    _customers(engine)
    ids = _import(
        engine,
        [_record("A1", "2025-08-01", "900.00"), _record("A2", "2025-08-02", "320.00")],
    )
    _book(
        engine,
        ids["A1"],
        Part("order", _money("300.00"), "C1", "SO-1"),
        Part("balance", _money("600.00"), "C1"),
    )
    _book(engine, ids["A2"], Part("balance", _money("320.00"), "C2"))

    with Session(engine) as session:
        found = reports.customer_anomalies(session, as_of=AS_OF, unused_days=60)

    assert [(a.customer_id, a.kind, a.amount, a.line_refs) for a in found] == [
        ("C1", "over_advance", _money("600.00"), ["A1"])
    ]


def test_reports_anomalies_by_kind(engine):
    _customers(engine)
    ids = _import(
        engine,
        [_record("A1", "2025-08-01", "50.00"), _record("A2", "2025-08-02", "70.00")],
    )
    _mark(engine, ids["A1"], anomaly_reasons=["duplicate", "unidentified"])
    _mark(engine, ids["A2"], anomaly_reasons=["unidentified"])

    with Session(engine) as session:
        rows = reports.anomaly_rows(session, as_of=AS_OF, unused_days=60)

    assert rows == [
        {
            "level": "line",
            "kind": "duplicate",
            "severity": "alert",
            "count": 1,
            "amount": _money("50.00"),
        },
        {
            "level": "line",
            "kind": "unidentified",
            "severity": "note",
            "count": 2,
            "amount": _money("120.00"),
        },
    ]


# Unmatched money -------------------------------------------------------------------


def test_reports_unmatched_identified_or_not(engine):
    _customers(engine)
    ids = _import(
        engine,
        [
            _record("A1", "2025-08-01", "50.00"),
            _record("A2", "2025-08-02", "70.00"),
            _record("A3", "2025-08-03", "-20.00"),
            _record("A4", "2025-08-04", "10.00"),
        ],
    )
    _mark(
        engine,
        ids["A1"],
        status="review",
        suggestion={"candidates": [{"customer_id": "C1"}]},
    )
    _mark(engine, ids["A2"], status="unmatched", anomaly_reasons=["unidentified"])
    _mark(engine, ids["A3"], status="unmatched")
    _book(engine, ids["A4"], Part("balance", _money("10.00"), "C1"))

    with Session(engine) as session:
        rows = reports.unmatched_rows(session, as_of=AS_OF)

    assert [(r["line_ref"], r["identified"]) for r in rows] == [
        ("A1", True),
        ("A2", False),
        ("A3", False),
    ]
    assert reports.unmatched_totals(rows) == {
        "identified_in": _money("50.00"),
        "unidentified_in": _money("70.00"),
        "money_out": _money("-20.00"),
    }


def test_reports_unmatched_money_out_after_money_in(engine):
    _customers(engine)
    _import(
        engine,
        [
            _record("O1", "2025-08-01", "-20.00", memo="salary"),
            _record("A1", "2025-08-02", "50.00"),
            _record("O2", "2025-08-03", "-5.00", memo="electricity"),
            _record("A2", "2025-08-04", "10.00"),
        ],
    )

    with Session(engine) as session:
        rows = reports.unmatched_rows(session, as_of=AS_OF)

    assert [(r["line_ref"], r["direction"], r["amount"]) for r in rows] == [
        ("A1", "money_in", _money("50.00")),
        ("A2", "money_in", _money("10.00")),
        ("O1", "money_out", _money("-20.00")),
        ("O2", "money_out", _money("-5.00")),
    ]
    assert "direction" in reports.UNMATCHED_COLUMNS


# Reconciliation -----------------------------------------------------------------------


def _reconcile(engine, month="2025-08", account="BANK-1"):
    with Session(engine) as session:
        return reports.reconciliation(session, account=account, month=month)


def test_reports_reconciliation_ties(engine):
    _customers(engine)
    ids = _import(
        engine,
        [
            _record("A1", "2025-08-01", "500.00"),
            _record("A2", "2025-08-05", "300.00"),
            _record("A3", "2025-08-09", "-15.00"),
            _record("A4", "2025-08-12", "42.00"),
        ],
        opening="1000.00",
        closing="1827.00",
    )
    _book(
        engine,
        ids["A1"],
        Part("order", _money("300.00"), "C1", "SO-1"),
        Part("balance", _money("200.00"), "C1"),
    )
    _mark(engine, ids["A2"], status="refund")
    with session_scope(engine) as session:
        controls.request_taking(
            session,
            customer_id="C1",
            kind="fee",
            amount=_money("15.00"),
            actor="clerk-a",
            limit=_money("1000.00"),
            today=AS_OF,
            line_id=ids["A3"],
        )

    report = _reconcile(engine)

    assert report.differences == []
    assert report.tied
    assert (report.opening_balance, report.closing_balance) == (
        _money("1000.00"),
        _money("1827.00"),
    )
    assert report.lines_total == _money("827.00")
    assert report.places["order"] == _money("300.00")
    assert report.places["balance"] == _money("200.00")
    assert report.places["refund"] == _money("300.00")
    assert report.places["fee"] == _money("-15.00")
    assert report.places["unmatched"] == _money("42.00")
    assert report.balance_allocations == report.ledger_receipts == _money("200.00")
    assert report.ledger_movement["fee"] == _money("-15.00")


def test_reports_reconciliation_money_out_own_place(engine):
    _customers(engine)
    ids = _import(
        engine,
        [
            _record("A1", "2025-08-01", "500.00"),
            _record("O1", "2025-08-03", "-120.50", memo="salary"),
            _record("O2", "2025-08-05", "-30.00", memo="rent"),
            _record("A2", "2025-08-07", "80.00"),
        ],
        opening="1000.00",
        closing="1429.50",
    )
    _mark(engine, ids["O2"], status="not_customer")
    _mark(engine, ids["A2"], status="unmatched")

    report = _reconcile(engine)

    assert report.differences == []
    assert report.lines_total == _money("429.50")
    assert report.places["unmatched"] == _money("580.00")
    assert report.places["unmatched_out"] == _money("-120.50")
    assert report.places["not_customer"] == _money("-30.00")
    assert report.places["difference"] == _money("0.00")
    assert sum(report.places.values(), _money("0.00")) == report.lines_total


def test_reports_reconciliation_lists_differences(engine):
    _customers(engine)
    ids = _import(
        engine,
        [_record("A1", "2025-08-01", "500.00"), _record("A2", "2025-08-05", "80.00")],
        opening="1000.00",
        closing="1600.00",
    )
    _book(engine, ids["A1"], Part("balance", _money("500.00"), "C1"))
    with session_scope(engine) as session:
        # A receipt written outside the booking code drifts from the allocation.
        session.add(
            LedgerEntry(
                customer_id="C1",
                kind="reversal",
                amount=_money("-0.01"),
                line_id=ids["A1"],
                allocation_id=session.exec(
                    select(LedgerEntry.allocation_id).where(
                        LedgerEntry.line_id == ids["A1"]
                    )
                ).first(),
                booked_on=date(2025, 8, 2),
                actor="script",
            )
        )

    report = _reconcile(engine)

    kinds = {(d.kind, d.amount, d.line_ref) for d in report.differences}
    assert kinds == {
        ("statement_balance", _money("-20.00"), ""),
        ("ledger_mismatch", _money("0.01"), "A1"),
    }
    assert not report.tied


def test_reports_reconciliation_without_balances(engine):
    _customers(engine)
    _import(engine, [_record("A1", "2025-08-01", "500.00")])

    report = _reconcile(engine)

    [difference] = report.differences
    assert difference.kind == "no_statement_balance"
    assert difference.amount == _money("500.00")


def test_reports_reconciliation_ends_on_closing_date(engine):
    _customers(engine)
    _import(
        engine,
        [_record("A1", "2025-08-05", "500.00"), _record("A2", "2025-08-28", "80.00")],
        opening="1000.00",
        closing="1580.00",
        closing_date="2025-08-31",
    )

    report = _reconcile(engine)
    rows = reports.reconciliation_rows(report)

    assert report.closing_day == date(2025, 8, 31)
    assert report.closing_day_source == reports.BALANCE_DATE
    assert report.differences == []
    [closing] = [row for row in rows if row["item"] == "closing_balance"]
    assert closing["detail"] == "closing balance dated 2025-08-31"


def test_reports_reconciliation_without_closing_date(engine):
    _customers(engine)
    _import(
        engine,
        [_record("A1", "2025-08-05", "500.00"), _record("A2", "2025-08-28", "80.00")],
        opening="1000.00",
        closing="1580.00",
    )

    report = _reconcile(engine)
    rows = reports.reconciliation_rows(report)

    assert report.closing_day == date(2025, 8, 28)
    assert report.closing_day_source == reports.LAST_LINE
    [closing] = [row for row in rows if row["item"] == "closing_balance"]
    assert closing["detail"] == "statement's last line on 2025-08-28"


def test_reports_reconciliation_balance_before_last_line(engine):
    _customers(engine)
    _import(
        engine,
        [_record("A1", "2025-08-05", "500.00"), _record("A2", "2025-08-28", "80.00")],
        opening="1000.00",
        closing="1580.00",
        closing_date="2025-08-27",
    )

    report = _reconcile(engine)

    assert report.closing_day == date(2025, 8, 28)
    assert report.closing_day_source == reports.LAST_LINE
    assert report.differences == []


def test_reports_reconciliation_lines_after_closing_date(engine):
    _customers(engine)
    _import(
        engine,
        [_record("A1", "2025-08-05", "500.00"), _record("A2", "2025-08-28", "80.00")],
        opening="1000.00",
        closing="1580.00",
        closing_date="2025-08-29",
    )
    _import(engine, [_record("B1", "2025-08-29", "7.00")])
    _import(engine, [_record("D1", "2025-08-30", "40.00")])

    report = _reconcile(engine)

    kinds = {(d.kind, d.amount) for d in report.differences}
    assert kinds == {
        ("statement_balance", _money("7.00")),
        ("after_last_statement", _money("40.00")),
    }
    [after] = [d for d in report.differences if d.kind == "after_last_statement"]
    assert after.detail.startswith("the last statement ends on 2025-08-29;")


def test_reports_reconciliation_closing_date_next_month(engine):
    _customers(engine)
    _import(
        engine,
        [_record("A1", "2025-07-05", "500.00"), _record("A2", "2025-07-28", "80.00")],
        opening="1000.00",
        closing="1580.00",
        closing_date="2025-08-01",
    )
    _import(
        engine,
        [_record("B1", "2025-08-04", "20.00")],
        opening="1580.00",
        closing="1600.00",
        closing_date="2025-08-31",
    )

    july = _reconcile(engine, month="2025-07")
    august = _reconcile(engine)

    assert july.closing_balance is None
    assert [d.kind for d in july.differences] == ["no_statement_balance"]
    assert august.opening_balance == _money("1580.00")
    assert august.closing_day == date(2025, 8, 31)
    assert august.differences == []


def test_reports_reconciliation_rows_csv(engine):
    _customers(engine)
    _import(
        engine,
        [_record("A1", "2025-08-01", "500.00")],
        opening="0.00",
        closing="500.00",
    )
    options = reports.ReportOptions(as_of=AS_OF, account="BANK-1", month="2025-08")

    with Session(engine) as session:
        columns, rows = reports.report_table(session, "reconciliation", options)
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows, columns))))

    by_item = {(row["section"], row["item"]): row["amount"] for row in parsed}
    assert by_item[("bank", "opening_balance")] == "0.00"
    assert by_item[("bank", "closing_balance")] == "500.00"
    assert by_item[("places", "unmatched")] == "500.00"


def test_reports_csv_neutralises_names(engine):
    _customers(engine)
    ids = _import(engine, [_record("A1", "2025-05-01", "400.00")])
    _book(engine, ids["A1"], Part("balance", _money("400.00"), "C2"))
    options = reports.ReportOptions(as_of=AS_OF, unused_days=60)

    with Session(engine) as session:
        columns, rows = reports.report_table(session, "reminders", options)
    text = csv_text(rows, columns)

    assert "'=HYPERLINK" in text
    assert ",400.00," in text


def test_reports_unknown_name_rejected(engine):
    options = reports.ReportOptions(as_of=AS_OF)

    with (
        Session(engine) as session,
        pytest.raises(ledger.InvalidLedgerRequest, match="report 'nope' is not one of"),
    ):
        reports.report_table(session, "nope", options)


def test_reports_reconciliation_undone_refund_line(engine):
    _customers(engine)
    ids = _import(
        engine,
        [
            _record("A1", "2025-08-01", "300.00"),
            _record("OUT", "2025-08-10", "-300.00"),
        ],
        opening="0.00",
        closing="0.00",
    )
    _book(engine, ids["A1"], Part("balance", _money("300.00"), "C1"))
    with session_scope(engine) as session:
        controls.request_refund(
            session,
            customer_id="C1",
            amount=_money("300.00"),
            actor="clerk-a",
            limit=_money("1000.00"),
            today=AS_OF,
            payment_line_id=ids["OUT"],
        )
    assert _reconcile(engine).differences == []

    with session_scope(engine) as session:
        review.reverse_line(
            session,
            ids["OUT"],
            actor="clerk-b",
            reason="not a refund",
            expected_version=None,
        )

    [difference] = _reconcile(engine).differences
    assert (difference.kind, difference.amount, difference.line_ref) == (
        "refund_mismatch",
        _money("300.00"),
        "OUT",
    )
