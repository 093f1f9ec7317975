"""The reports tab of the review page, and its views without Gradio.

The tab shows prepayment balances by age, anomalies by kind, reminders,
unmatched money and one bank account's monthly reconciliation, each of
which can be exported as CSV or XLSX. Below them a clerk opens a customer's
ledger, applies the balance to an order or an invoice, requests a refund or
a write-off, and approves other users' requests.

Reading needs a signed-in user, like the queue, and masks payers' and
customers' personal data for roles that see it masked in the API. Every
action needs a signed-in user whose role allows it, and runs in its own
transaction.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import gradio as gr
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.db import session_scope
from models.errors import CashmatchError
from models.money import ZERO, to_money
from review_ui.reasons import (
    AGE_BUCKETS,
    ANOMALIES,
    ANOMALY_LEVELS,
    CUSTOMER_ANOMALIES,
    ENTRY_KINDS,
    LINE_STATUSES,
    REQUEST_KINDS,
    REQUEST_STATUSES,
    anomalies_text,
    code_text,
    duplicate_state_text,
    status_text,
)
from review_ui.texts import text
from review_ui.views import Clerk, requires_sign_in
from service import controls, ledger, reports
from service.auth import allows
from service.exports import csv_text, xlsx_bytes
from service.masking import mask_name, mask_report_row, mask_text, needs_masking
from service.settings import Settings

log = logging.getLogger("cashmatch.review_ui")

EXPORT_NAMES = reports.REPORT_NAMES
# Report columns shown with the page's own words; the others keep the
# column names of the CSV export.
COLUMN_KEYS = {
    "customer_id": "col_customer",
    "amount": "col_amount",
    "line_ref": "col_line_ref",
    "booking_date": "col_date",
    "status": "col_status",
    "memo": "col_memo",
    "kind": "col_kind",
    "counterparty_name": "col_counterparty",
    "decision": "col_decision",
    "name": "col_name",
    "balance": "col_balance_total",
    "days_0_30": "col_days_0_30",
    "days_31_60": "col_days_31_60",
    "days_61_90": "col_days_61_90",
    "days_over_90": "col_days_over_90",
    "oldest_day": "col_oldest_day",
    "age_days": "col_age_days",
    "since": "col_since",
    "level": "col_level",
    "detail": "col_detail_report",
    "identified": "col_identified",
    "candidate_customer_id": "col_candidate",
    "direction": "col_direction",
    "request_id": "col_request_id",
    "account": "col_account_report",
}
UNMATCHED_SHOWN = (
    "line_ref",
    "account",
    "booking_date",
    "amount",
    "counterparty_name",
    "memo",
    "status",
    "identified",
    "candidate_customer_id",
    "age_days",
)
ENTRY_COLUMNS = (
    "id",
    "booked_on",
    "kind",
    "amount",
    "order_id",
    "invoice_id",
    "line_id",
    "reverses_id",
    "actor",
    "note",
)
ANOMALY_SHOWN = ("level", "kind", "amount", "detail")
REQUEST_COLUMNS = (
    "id",
    "customer_id",
    "kind",
    "amount",
    "status",
    "requested_by",
    "note",
)


# Views -------------------------------------------------------------------------


def parse_day(value: str, language: str) -> date | None:
    """Return the day in a text field, None when empty; raise ValueError."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(text("bad_day", language, value=value)) from None


def parse_amount(value: str, language: str) -> Decimal:
    """Return a positive amount from a text field; raise ValueError."""
    try:
        amount = to_money((value or "").strip())
    except (ValueError, ArithmeticError):
        raise ValueError(text("bad_amount", language, value=value)) from None
    if amount <= 0:
        raise ValueError(text("bad_amount", language, value=value))
    return amount


def frame(rows: list[dict], columns, language: str) -> pd.DataFrame:
    """Return rows as a table of text cells with translated headers.

    Cells are plain strings, so payer text is never read as a formula or
    markup and amounts keep their two decimal places.
    """
    headers = [
        text(COLUMN_KEYS[c], language) if c in COLUMN_KEYS else c for c in columns
    ]
    cells = [[_cell(row.get(column), language) for column in columns] for row in rows]
    return pd.DataFrame(cells, columns=headers)


def _cell(value, language: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return text("yes" if value else "no", language)
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


@dataclass
class ReportsView:
    """Charts, tables and summary text of the reports part of the tab."""

    ageing: pd.DataFrame
    anomalies: pd.DataFrame
    balances: pd.DataFrame
    reminders: pd.DataFrame
    unmatched: pd.DataFrame
    reconciliation: pd.DataFrame
    summary: str


def reports_view(
    engine: Engine,
    settings: Settings,
    *,
    as_of: date,
    account: str,
    month: str,
    language: str,
    masked: bool = False,
) -> ReportsView:
    """Return the charts, tables and summary of the reports part of the tab."""
    options = _options(settings, as_of, account, month)
    with Session(engine) as session:
        balances = reports.balance_rows(session, as_of=as_of)
        anomalies = reports.anomaly_rows(
            session,
            as_of=as_of,
            unused_days=options.unused_days,
            fee_max=options.fee_max,
        )
        reminders = reports.reminder_rows(
            session, as_of=as_of, unused_days=options.unused_days
        )
        unmatched = reports.unmatched_rows(
            session, as_of=as_of, account=account or None
        )
        rec_table, rec_text = _reconciliation(session, account, month, language)
    totals = reports.unmatched_totals(unmatched)
    if masked:
        balances = [mask_report_row(row) for row in balances]
        reminders = [mask_report_row(row) for row in reminders]
        unmatched = [mask_report_row(row) for row in unmatched]
    summary = text(
        "rep_totals",
        language,
        balance=f"{sum((r['balance'] for r in balances), ZERO):.2f}",
        unmatched=f"{totals['identified_in'] + totals['unidentified_in']:.2f}",
        unidentified=f"{totals['unidentified_in']:.2f}",
    )
    return ReportsView(
        ageing=_ageing_chart(balances, language),
        anomalies=_anomaly_chart(anomalies, language),
        balances=frame(balances, reports.BALANCE_COLUMNS, language),
        reminders=frame(
            _named_reminders(reminders, language), reports.REMINDER_COLUMNS, language
        ),
        unmatched=frame(
            _named_codes(unmatched, language, status=LINE_STATUSES),
            UNMATCHED_SHOWN,
            language,
        ),
        reconciliation=rec_table,
        summary="\n".join(part for part in (summary, rec_text) if part),
    )


def _options(
    settings: Settings, as_of: date, account: str = "", month: str = ""
) -> reports.ReportOptions:
    return reports.ReportOptions(
        as_of=as_of,
        unused_days=settings.unused_balance_days,
        fee_max=settings.fee_max,
        account=account or None,
        month=month or None,
    )


def _ageing_chart(balances: list[dict], language: str) -> pd.DataFrame:
    totals = reports.ageing_totals(balances)
    # The chart needs numbers to draw bars; the amounts are converted to
    # float here for drawing only, and every table keeps the exact Decimal.
    return pd.DataFrame(
        {
            "bucket": [code_text(AGE_BUCKETS, name, language) for name in totals],
            "amount": [float(amount) for amount in totals.values()],
        }
    )


def _named_codes(rows: list[dict], language: str, **codes) -> list[dict]:
    """Return rows with each column in `codes` renamed by its code dictionary."""
    if language != "zh":
        return rows
    return [
        {
            **row,
            **{
                column: code_text(names, row[column], language)
                for column, names in codes.items()
            },
        }
        for row in rows
    ]


def _named_reminders(rows: list[dict], language: str) -> list[dict]:
    # The detail of a repeat payment is its refund state. The detail of an
    # unused balance is an English sentence, and it stays as written.
    if language != "zh":
        return rows
    named = []
    for row in rows:
        kind = code_text(CUSTOMER_ANOMALIES, row["kind"], language)
        named_row = {**row, "kind": kind}
        if row["kind"] == "duplicate":
            named_row["detail"] = duplicate_state_text(row["detail"], language)
        named.append(named_row)
    return named


def _anomaly_chart(rows: list[dict], language: str) -> pd.DataFrame:
    labels = []
    for row in rows:
        kinds = CUSTOMER_ANOMALIES if row["level"] == "customer" else ANOMALIES
        labels.append(
            text(
                "rep_anomaly_label",
                language,
                level=code_text(ANOMALY_LEVELS, row["level"], language),
                kind=code_text(kinds, row["kind"], language),
            )
        )
    return pd.DataFrame({"kind": labels, "count": [row["count"] for row in rows]})


def _reconciliation(
    session: Session, account: str, month: str, language: str
) -> tuple[pd.DataFrame, str]:
    columns = reports.RECONCILIATION_COLUMNS
    if not account or not month:
        return frame([], columns, language), ""
    report = reports.reconciliation(session, account=account, month=month)
    rows = reports.reconciliation_rows(report)
    key = "rep_tied" if report.tied else "rep_not_tied"
    summary = text(
        key,
        language,
        account=account,
        month=report.month,
        count=len(report.differences),
    )
    return frame(rows, columns, language), summary


def export_report(
    engine: Engine,
    settings: Settings,
    name: str,
    fmt: str,
    *,
    as_of: date,
    account: str,
    month: str,
    folder: Path,
    masked: bool = False,
) -> Path:
    """Write a report as CSV or XLSX into `folder` and return the file."""
    with Session(engine) as session:
        columns, rows = reports.report_table(
            session, name, _options(settings, as_of, account, month)
        )
    if masked:
        rows = [mask_report_row(row) for row in rows]
    path = folder / f"{name}-{as_of.isoformat()}.{fmt}"
    if fmt == "xlsx":
        path.write_bytes(xlsx_bytes(rows, columns, title=name))
    else:
        # A byte-order mark lets spreadsheet programs read the file as UTF-8.
        path.write_text("\ufeff" + csv_text(rows, columns), encoding="utf-8")
    return path


@dataclass
class CustomerView:
    """A customer's balance, ledger, anomalies and open requests."""

    summary: str
    entries: pd.DataFrame
    anomalies: pd.DataFrame


def customer_view(
    engine: Engine,
    settings: Settings,
    customer_id: str,
    *,
    as_of: date,
    language: str,
    masked: bool = False,
) -> CustomerView:
    """Return a customer's ledger with customer-level and line-level anomalies.

    With `masked`, a person's name is masked, and so are that name and
    account numbers in the entries' notes.
    """
    with Session(engine) as session:
        view = ledger.customer_ledger(session, customer_id.strip())
        found = reports.customer_anomalies(
            session,
            as_of=as_of,
            unused_days=settings.unused_balance_days,
            fee_max=settings.fee_max,
            customer_id=view.customer_id,
        )
        lines = reports.line_anomalies(session, view.customer_id)
    name = mask_name(view.name) if masked else view.name
    entries = [
        {column: getattr(entry, column) for column in ENTRY_COLUMNS}
        for entry in view.entries
    ]
    if masked:
        entries = [
            {**entry, "note": mask_text(entry["note"] or "", names=[view.name])}
            for entry in entries
        ]
    customer_level = code_text(ANOMALY_LEVELS, "customer", language)
    line_level = code_text(ANOMALY_LEVELS, "line", language)
    anomalies = [
        {
            "level": customer_level,
            "kind": code_text(CUSTOMER_ANOMALIES, a.kind, language),
            "amount": a.amount,
            "detail": a.detail,
        }
        for a in found
    ] + [
        {
            "level": line_level,
            "kind": anomalies_text("|".join(line.anomaly_reasons or ()), language),
            "amount": line.amount,
            "detail": f"{line.line_ref} {line.booking_date.isoformat()} "
            f"{code_text(LINE_STATUSES, line.status, language)}",
        }
        for line in lines
    ]
    summary = text(
        "cust_balance_text",
        language,
        customer=view.customer_id,
        name=name,
        balance=f"{view.balance:.2f}",
    )
    return CustomerView(
        summary=summary,
        entries=frame(
            _named_codes(entries, language, kind=ENTRY_KINDS), ENTRY_COLUMNS, language
        ),
        anomalies=frame(anomalies, ANOMALY_SHOWN, language),
    )


def pending_requests(engine: Engine, language: str) -> pd.DataFrame:
    """Return the requests that wait for a second user's approval."""
    with Session(engine) as session:
        found = controls.list_requests(session, status="pending")
        rows = [{c: getattr(r, c) for c in REQUEST_COLUMNS} for r in found]
    rows = _named_codes(rows, language, kind=REQUEST_KINDS, status=REQUEST_STATUSES)
    return frame(rows, REQUEST_COLUMNS, language)


# Actions ---------------------------------------------------------------------------


def _check_role(clerk: Clerk | None, permission: str, language: str) -> None:
    if clerk is None:
        raise PermissionError(text("not_signed_in", language))
    if not allows(clerk.role, permission):
        raise PermissionError(text("cannot_act", language, role=clerk.role))


def apply_balance(
    engine: Engine,
    settings: Settings,
    clerk: Clerk | None,
    *,
    customer_id: str,
    order_id: str,
    invoice_id: str,
    amount: str,
    language: str,
) -> str:
    """Apply part of a customer's balance; return the message for the clerk."""
    try:
        _check_role(clerk, "confirm", language)
        value = parse_amount(amount, language)
        with session_scope(engine) as session:
            ledger.apply_balance(
                session,
                customer_id=customer_id.strip(),
                amount=value,
                actor=clerk.name,
                today=_today(settings),
                order_id=order_id.strip() or None,
                invoice_id=invoice_id.strip() or None,
            )
            balance = ledger.balance(session, customer_id.strip())
    except (CashmatchError, ValueError, PermissionError) as exc:
        return _failed("apply", clerk, customer_id, exc, language)
    return text(
        "msg_applied",
        language,
        customer=customer_id.strip(),
        amount=f"{value:.2f}",
        balance=f"{balance:.2f}",
    )


def ask(
    engine: Engine,
    settings: Settings,
    clerk: Clerk | None,
    *,
    kind: str,
    customer_id: str,
    amount: str,
    note: str,
    language: str,
) -> str:
    """Request a refund or a write-off; return the message for the clerk."""
    limit = settings.approval_limit
    try:
        _check_role(clerk, "confirm", language)
        value = parse_amount(amount, language)
        with session_scope(engine) as session:
            common = {
                "customer_id": customer_id.strip(),
                "amount": value,
                "actor": clerk.name,
                "limit": limit,
                "today": _today(settings),
                "note": note or "",
            }
            if kind == "refund":
                request = controls.request_refund(session, **common)
            else:
                request = controls.request_taking(session, kind=kind, **common)
    except (CashmatchError, ValueError, PermissionError) as exc:
        return _failed(kind, clerk, customer_id, exc, language)
    return _request_message(request, language)


def decide_request(
    engine: Engine,
    settings: Settings,
    clerk: Clerk | None,
    request_id: int | None,
    *,
    approve: bool,
    language: str,
) -> str:
    """Approve or reject another user's request; return the message."""
    try:
        _check_role(clerk, "review", language)
        if request_id is None:
            raise ValueError(text("no_task", language))
        with session_scope(engine) as session:
            if approve:
                request = controls.approve_request(
                    session, int(request_id), actor=clerk.name, today=_today(settings)
                )
            else:
                request = controls.reject_request(
                    session, int(request_id), actor=clerk.name
                )
    except (CashmatchError, ValueError, PermissionError) as exc:
        action = "approve" if approve else "reject"
        return _failed(action, clerk, request_id, exc, language)
    return _request_message(request, language)


def _request_message(request, language: str) -> str:
    return text(
        "msg_requested",
        language,
        request=request.id,
        kind=code_text(REQUEST_KINDS, request.kind, language),
        amount=f"{request.amount:.2f}",
        status=status_text(REQUEST_STATUSES, request.status, language),
    )


def _failed(action: str, clerk: Clerk | None, target, exc: Exception, language) -> str:
    log.warning(
        "reports tab: %s on %s by %s failed: %s",
        action,
        target,
        clerk.name if clerk else "nobody",
        exc,
    )
    return text("error", language, error=str(exc))


def _today(settings: Settings) -> date:
    return ledger.local_today(settings.time_zone)


# The tab ---------------------------------------------------------------------------


class ReportsTab:
    """The components of the reports tab and their event handlers."""

    def __init__(self, settings: Settings, engine: Engine, labels, clerk, language):
        self.settings = settings
        self.engine = engine
        self.labels = labels
        self.clerk = clerk
        self.language = language
        self.folder = Path(tempfile.mkdtemp(prefix="cashmatch-reports-"))

    def build(self, language: str, tab: gr.Tab) -> None:
        """Lay out the tab inside `tab`; selecting the tab loads its data."""
        self._report_controls(language)
        self._report_outputs(language)
        self._customer_part(language)
        self._approvals_part(language)
        self._wire()
        tab.select(self.refresh, self._report_inputs(), self._report_outputs_list())
        tab.select(self.show_requests, [self.clerk, self.language], [self.requests])

    def _add(self, component, key: str, attribute: str = "label"):
        return self.labels.add(component, key, attribute)

    def _report_controls(self, language: str) -> None:
        add = self._add
        with gr.Row():
            self.as_of = add(
                gr.Textbox(
                    label=text("rep_as_of", language),
                    value=_today(self.settings).isoformat(),
                    elem_id="report-as-of",
                ),
                "rep_as_of",
            )
            self.account = add(
                gr.Textbox(
                    label=text("account", language),
                    value=self.settings.default_account,
                    elem_id="report-account",
                ),
                "account",
            )
            self.month = add(
                gr.Textbox(label=text("rep_month", language), elem_id="report-month"),
                "rep_month",
            )
            self.refresh_button = add(
                gr.Button(text("rep_refresh", language), elem_id="report-refresh-btn"),
                "rep_refresh",
                "value",
            )
        self.summary = add(
            gr.Textbox(
                label=text("rep_summary", language),
                interactive=False,
                lines=2,
                elem_id="report-summary",
            ),
            "rep_summary",
        )

    def _report_outputs(self, language: str) -> None:
        add = self._add
        with gr.Row():
            self.ageing_plot = add(
                gr.BarPlot(
                    x="bucket",
                    y="amount",
                    label=text("rep_ageing", language),
                    elem_id="ageing-plot",
                ),
                "rep_ageing",
            )
            self.anomaly_plot = add(
                gr.BarPlot(
                    x="kind",
                    y="count",
                    label=text("rep_anomalies", language),
                    x_label_angle=-30,
                    elem_id="anomaly-plot",
                ),
                "rep_anomalies",
            )
        self.tables = {
            key: add(
                gr.Dataframe(
                    value=frame([], columns, language),
                    label=text(key, language),
                    interactive=False,
                    datatype="str",
                    # Memos need wrapping; the other tables scroll sideways.
                    wrap=key == "rep_unmatched",
                    elem_id=element,
                ),
                key,
            )
            for key, element, columns in (
                ("rep_balances", "balances", reports.BALANCE_COLUMNS),
                ("rep_reminders", "reminders", reports.REMINDER_COLUMNS),
                ("rep_unmatched", "unmatched", UNMATCHED_SHOWN),
                (
                    "rep_reconciliation",
                    "reconciliation",
                    reports.RECONCILIATION_COLUMNS,
                ),
            )
        }
        with gr.Row():
            self.export_name = add(
                gr.Dropdown(
                    choices=list(EXPORT_NAMES),
                    value="reminders",
                    label=text("rep_report", language),
                ),
                "rep_report",
            )
            self.export_format = add(
                gr.Radio(
                    choices=["csv", "xlsx"],
                    value="csv",
                    label=text("rep_format", language),
                ),
                "rep_format",
            )
            self.export_button = add(
                gr.Button(text("rep_download", language), elem_id="export-btn"),
                "rep_download",
                "value",
            )
            self.export_file = add(
                gr.File(label=text("rep_file", language), interactive=False),
                "rep_file",
            )

    def _customer_part(self, language: str) -> None:
        add = self._add
        with gr.Row():
            self.customer_id = add(
                gr.Textbox(label=text("customer", language), elem_id="ledger-customer"),
                "customer",
            )
            self.show_button = add(
                gr.Button(text("cust_show", language), elem_id="ledger-show-btn"),
                "cust_show",
                "value",
            )
            self.customer_summary = add(
                gr.Textbox(
                    label=text("cust_summary", language),
                    interactive=False,
                    elem_id="ledger-summary",
                ),
                "cust_summary",
            )
        self.entries = add(
            gr.Dataframe(
                value=frame([], ENTRY_COLUMNS, language),
                label=text("cust_entries", language),
                interactive=False,
                datatype="str",
                wrap=True,
                elem_id="ledger-entries",
            ),
            "cust_entries",
        )
        self.customer_anomalies = add(
            gr.Dataframe(
                value=frame([], ANOMALY_SHOWN, language),
                label=text("cust_anomalies", language),
                interactive=False,
                datatype="str",
                wrap=True,
                elem_id="ledger-anomalies",
            ),
            "cust_anomalies",
        )
        with gr.Row():
            self.order_id = add(
                gr.Textbox(label=text("cust_order", language)), "cust_order"
            )
            self.invoice_id = add(
                gr.Textbox(label=text("cust_invoice", language)), "cust_invoice"
            )
            self.amount = add(
                gr.Textbox(
                    label=text("cust_amount", language), elem_id="ledger-amount"
                ),
                "cust_amount",
            )
            self.note = add(gr.Textbox(label=text("note", language)), "note")
        with gr.Row():
            self.action_buttons = {
                action: add(
                    gr.Button(text(key, language), elem_id=element),
                    key,
                    "value",
                )
                for action, key, element in (
                    ("apply", "cust_apply", "ledger-apply-btn"),
                    ("refund", "cust_refund", "ledger-refund-btn"),
                    ("write_off", "cust_write_off", "ledger-write-off-btn"),
                )
            }

    def _approvals_part(self, language: str) -> None:
        add = self._add
        self.requests = add(
            gr.Dataframe(
                value=frame([], REQUEST_COLUMNS, language),
                label=text("req_pending", language),
                interactive=False,
                datatype="str",
                elem_id="ledger-requests",
            ),
            "req_pending",
        )
        with gr.Row():
            self.request_id = add(
                gr.Number(label=text("req_id", language), precision=0),
                "req_id",
            )
            self.approve_button = add(
                gr.Button(text("req_approve", language), elem_id="ledger-approve-btn"),
                "req_approve",
                "value",
            )
            self.reject_button = add(
                gr.Button(text("req_reject", language), elem_id="ledger-reject-btn"),
                "req_reject",
                "value",
            )
            self.requests_button = add(
                gr.Button(text("req_refresh", language), elem_id="ledger-requests-btn"),
                "req_refresh",
                "value",
            )
        self.action_message = add(
            gr.Textbox(
                label=text("message", language),
                interactive=False,
                elem_id="ledger-message",
            ),
            "message",
        )

    # Events ------------------------------------------------------------------

    def _report_inputs(self) -> list:
        return [self.clerk, self.as_of, self.account, self.month, self.language]

    def _report_outputs_list(self) -> list:
        return [
            self.ageing_plot,
            self.anomaly_plot,
            *self.tables.values(),
            self.summary,
        ]

    def _wire(self) -> None:
        self.refresh_button.click(
            self.refresh, self._report_inputs(), self._report_outputs_list()
        )
        self.export_button.click(
            self.export,
            [
                self.clerk,
                self.export_name,
                self.export_format,
                *self._report_inputs()[1:],
            ],
            [self.export_file, self.summary],
        )
        customer_outputs = [
            self.customer_summary,
            self.entries,
            self.customer_anomalies,
            self.action_message,
        ]
        self.show_button.click(
            self.show_customer,
            [self.clerk, self.customer_id, self.as_of, self.language],
            customer_outputs,
        )
        action_inputs = [
            self.clerk,
            self.customer_id,
            self.order_id,
            self.invoice_id,
            self.amount,
            self.note,
            self.as_of,
            self.language,
        ]
        for action, button in self.action_buttons.items():
            button.click(self._actor(action), action_inputs, customer_outputs).then(
                self.show_requests, [self.clerk, self.language], [self.requests]
            )
        for button, approve in (
            (self.approve_button, True),
            (self.reject_button, False),
        ):
            button.click(
                self._decider(approve),
                [self.clerk, self.request_id, self.language],
                [self.requests, self.action_message],
            )
        self.requests_button.click(
            self.show_requests, [self.clerk, self.language], [self.requests]
        )

    def _reports_signed_out(self, language):
        empty_tables = [
            frame([], columns, language)
            for columns in (
                reports.BALANCE_COLUMNS,
                reports.REMINDER_COLUMNS,
                UNMATCHED_SHOWN,
                reports.RECONCILIATION_COLUMNS,
            )
        ]
        return [None, None, *empty_tables, text("not_signed_in", language)]

    @requires_sign_in(_reports_signed_out)
    def refresh(self, clerk, as_of, account, month, language):
        """Recompute the charts and tables."""
        try:
            day = parse_day(as_of, language) or _today(self.settings)
            month = (month or "").strip()
            if month:
                ledger.parse_month(month)
            view = reports_view(
                self.engine,
                self.settings,
                as_of=day,
                account=(account or "").strip(),
                month=month,
                language=language,
                masked=needs_masking(clerk.role),
            )
        except (CashmatchError, ValueError) as exc:
            keep = [gr.update()] * (len(self.tables) + 2)
            return [*keep, text("error", language, error=str(exc))]
        return [
            view.ageing,
            view.anomalies,
            view.balances,
            view.reminders,
            view.unmatched,
            view.reconciliation,
            view.summary,
        ]

    def _export_signed_out(self, language):
        return None, text("not_signed_in", language)

    @requires_sign_in(_export_signed_out)
    def export(self, clerk, name, fmt, as_of, account, month, language):
        """Write the chosen report to a file the browser downloads."""
        try:
            day = parse_day(as_of, language) or _today(self.settings)
            path = export_report(
                self.engine,
                self.settings,
                name,
                fmt,
                as_of=day,
                account=(account or "").strip(),
                month=(month or "").strip(),
                folder=self.folder,
                masked=needs_masking(clerk.role),
            )
        except (CashmatchError, ValueError) as exc:
            return None, text("error", language, error=str(exc))
        return str(path), ""

    def _customer_signed_out(self, language):
        entries = frame([], ENTRY_COLUMNS, language)
        anomalies = frame([], ANOMALY_SHOWN, language)
        return "", entries, anomalies, text("not_signed_in", language)

    @requires_sign_in(_customer_signed_out)
    def show_customer(self, clerk, customer_id, as_of, language):
        """Show a customer's ledger and anomalies."""
        try:
            day = parse_day(as_of, language) or _today(self.settings)
            view = customer_view(
                self.engine,
                self.settings,
                customer_id or "",
                as_of=day,
                language=language,
                masked=needs_masking(clerk.role),
            )
        except (CashmatchError, ValueError) as exc:
            return "", gr.update(), gr.update(), text("error", language, error=str(exc))
        return view.summary, view.entries, view.anomalies, ""

    def _requests_signed_out(self, language):
        return frame([], REQUEST_COLUMNS, language)

    @requires_sign_in(_requests_signed_out)
    def show_requests(self, clerk, language):
        """Show the requests that wait for approval."""
        return pending_requests(self.engine, language)

    def _actor(self, action: str):
        def handler(
            clerk, customer_id, order_id, invoice_id, amount, note, as_of, language
        ):
            if action == "apply":
                message = apply_balance(
                    self.engine,
                    self.settings,
                    clerk,
                    customer_id=customer_id or "",
                    order_id=order_id or "",
                    invoice_id=invoice_id or "",
                    amount=amount or "",
                    language=language,
                )
            else:
                message = ask(
                    self.engine,
                    self.settings,
                    clerk,
                    kind=action,
                    customer_id=customer_id or "",
                    amount=amount or "",
                    note=note or "",
                    language=language,
                )
            summary, entries, anomalies, show_error = self.show_customer(
                clerk, customer_id, as_of, language
            )
            # A failure to show the ledger outranks the action's message.
            return summary, entries, anomalies, show_error or message

        handler.__name__ = f"ledger_{action}"
        return handler

    def _decider(self, approve: bool):
        def handler(clerk, request_id, language):
            message = decide_request(
                self.engine,
                self.settings,
                clerk,
                request_id,
                approve=approve,
                language=language,
            )
            return self.show_requests(clerk, language), message

        handler.__name__ = "ledger_approve" if approve else "ledger_reject"
        return handler
