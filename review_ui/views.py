"""Views and actions of the review page, without Gradio.

Each function opens its own transaction on the engine, so a page event is
one unit of work. Payer text (names, memos) is returned as plain strings
for text cells and text boxes, never as Markdown or HTML. With
`masked=True` the views mask payers' names and account numbers as the API
does for analysts (see `service.masking`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.db import session_scope
from models.errors import AllocationConflict, CashmatchError
from models.money import to_money
from models.tables import ReviewTask
from review_ui.texts import text
from service import review
from service.auth import allows, sign_in
from service.booking import Part
from service.masking import mask_line_fields, mask_name, mask_text
from service.review import ReviewDecision, TaskFilter

log = logging.getLogger("cashmatch.review_ui")


@dataclass(frozen=True)
class Clerk:
    """The signed-in user of one browser session."""

    name: str
    role: str


@dataclass
class TaskView:
    """Everything the task tab shows for one review task."""

    task_id: int
    line_id: int
    version: int
    line: pd.DataFrame
    candidates: pd.DataFrame
    open_orders: pd.DataFrame
    balance: str
    earlier: pd.DataFrame
    customer_id: str


def sign_in_clerk(
    engine: Engine, name: str, password: str, language: str
) -> tuple[Clerk | None, str]:
    """Check a name and password; return the clerk and a message."""
    with session_scope(engine) as session:
        user = sign_in(session, name.strip(), password)
        if user is None:
            return None, text("sign_in_failed", language)
        if not allows(user.role, "review"):
            return None, text("role_cannot_review", language, role=user.role)
        clerk = Clerk(user.name, user.role)
    log.info("review page sign-in by %s", clerk.name)
    return clerk, text("signed_in_as", language, name=clerk.name, role=clerk.role)


def requires_sign_in(signed_out: Callable[[object, str], object]):
    """Return a decorator that runs an event handler only for a signed-in user.

    The decorated method takes the clerk state as its first argument after
    `self` and the language as its last. Without a clerk it returns
    `signed_out(self, language)` instead: outputs that contain no payer
    data, and the page's sign-in message. Anyone can call a handler through
    Gradio's HTTP API, so the check sits in the handler, not in the layout.
    """

    def decorate(handler):
        @functools.wraps(handler)
        def checked(owner, clerk, *inputs):
            if clerk is None:
                return signed_out(owner, inputs[-1])
            return handler(owner, clerk, *inputs)

        return checked

    return decorate


# The queue -------------------------------------------------------------------


def parse_filters(
    account: str,
    customer_id: str,
    min_amount: str,
    max_amount: str,
    date_from: str,
    date_to: str,
    anomaly: str,
) -> TaskFilter:
    """Return the queue filter from the page's text fields.

    Raises ValueError naming the field that cannot be read.
    """
    return TaskFilter(
        account=account.strip() or None,
        customer_id=customer_id.strip() or None,
        min_amount=_amount_or_none(min_amount, "minimum amount"),
        max_amount=_amount_or_none(max_amount, "maximum amount"),
        date_from=_date_or_none(date_from, "from date"),
        date_to=_date_or_none(date_to, "to date"),
        anomaly=None if anomaly in ("", "all") else anomaly,
    )


def _amount_or_none(value: str, name: str) -> Decimal | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return to_money(value)
    except (ValueError, ArithmeticError):
        raise ValueError(f"{name} {value!r} is not an amount like 1250.00") from None


def _date_or_none(value: str, name: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a date like 2025-06-30") from None


def queue_table(
    engine: Engine,
    filters: TaskFilter,
    sort: str,
    language: str,
    *,
    masked: bool = False,
    limit: int = 200,
) -> tuple[pd.DataFrame, str]:
    """Return the open tasks as a table and their counts as one line of text."""
    with Session(engine) as session:
        page = review.list_tasks(session, filters, sort=sort, limit=limit)
        rows = [_queue_row(task, line, masked) for task, line in page.items]
    counts = _counts_text(page, language)
    return pd.DataFrame(rows, columns=queue_columns(language)), counts


def queue_columns(language: str) -> list[str]:
    """Return the queue table's headers in `language`."""
    return [
        text(key, language)
        for key in (
            "col_task",
            "col_line_ref",
            "col_date",
            "col_amount",
            "col_currency",
            "col_counterparty",
            "col_memo",
            "col_decision",
            "col_confidence",
            "col_anomalies",
            "col_claimed_by",
        )
    ]


def _payer_fields(line, masked: bool) -> dict:
    fields = {
        "counterparty_name": line.counterparty_name,
        "counterparty_account": line.counterparty_account,
        "memo": line.memo,
    }
    return mask_line_fields(fields) if masked else fields


def _queue_row(task, line, masked: bool) -> list:
    payer = _payer_fields(line, masked)
    return [
        str(task.id),
        line.line_ref,
        line.booking_date.isoformat(),
        f"{line.amount:.2f}",
        line.currency,
        payer["counterparty_name"],
        payer["memo"],
        line.decision or "",
        f"{line.confidence or 0.0:.3f}",
        "|".join(line.anomaly_reasons or ()),
        task.claimed_by or "",
    ]


def _counts_text(page: review.TaskPage, language: str) -> str:
    decisions = ", ".join(
        f"{k} {v}" for k, v in sorted(page.counts.get("decision", {}).items())
    )
    accounts = ", ".join(
        f"{k} {v}" for k, v in sorted(page.counts.get("account", {}).items())
    )
    flagged = page.counts.get("anomaly", {}).get("flagged", 0)
    return (
        f"{text('queue', language)}: {page.total} | {text('col_decision', language)}: "
        f"{decisions or '-'} | {text('account', language)}: {accounts or '-'} | "
        f"{text('flagged', language)}: {flagged}"
    )


def next_task(
    engine: Engine, clerk: Clerk, filters: TaskFilter, minutes: int
) -> int | None:
    """Claim the next free task in queue order and return its id."""
    with session_scope(engine) as session:
        task = review.claim_next(
            session, actor=clerk.name, minutes=minutes, filters=filters
        )
        return task.id if task else None


def claim_task(engine: Engine, clerk: Clerk, task_id: int, minutes: int) -> None:
    """Claim a task for the clerk, or raise ReviewConflict."""
    with session_scope(engine) as session:
        review.claim(session, task_id, actor=clerk.name, minutes=minutes)


def release_task(engine: Engine, clerk: Clerk, task_id: int) -> None:
    """Give up the clerk's claim on a task."""
    with session_scope(engine) as session:
        review.release(session, task_id, actor=clerk.name)


# One task ----------------------------------------------------------------------


def task_view(
    engine: Engine, task_id: int, language: str, *, masked: bool = False
) -> TaskView:
    """Return the line, candidates, orders, balance and history of a task."""
    with Session(engine) as session:
        task = review.get_task(session, task_id)
        line = review.get_line(session, task.line_id)
        context = review.task_context(session, line)
        customer = context["customer"]
        return TaskView(
            task_id=task.id,
            line_id=line.id,
            version=line.version,
            line=_line_table(line, language, masked),
            candidates=candidates_table(line, language, masked=masked),
            open_orders=_orders_table(context["open_orders"], language),
            balance=_balance_text(customer, context["balance"], masked),
            earlier=_earlier_table(context["earlier_lines"], language, masked),
            customer_id=customer.customer_id if customer else "",
        )


def _line_table(line, language: str, masked: bool = False) -> pd.DataFrame:
    payer = _payer_fields(line, masked)
    reasons = "; ".join((line.suggestion or {}).get("reasons", []))
    if masked:
        reasons = mask_text(reasons, names=[line.counterparty_name])
    fields = [
        ("field_line_ref", line.line_ref),
        ("field_account", line.account),
        ("field_booking_date", line.booking_date.isoformat()),
        ("field_amount", f"{line.amount:.2f} {line.currency}"),
        ("field_counterparty_name", payer["counterparty_name"]),
        ("field_counterparty_account", payer["counterparty_account"]),
        ("field_memo", payer["memo"]),
        ("field_channel", line.channel),
        ("field_status", line.status),
        ("field_decision", line.decision or ""),
        ("field_confidence", f"{line.confidence or 0.0:.3f}"),
        ("field_anomalies", "|".join(line.anomaly_reasons or ())),
        ("field_reasons", reasons),
        ("field_version", str(line.version)),
    ]
    return pd.DataFrame(
        [[text(key, language), value] for key, value in fields],
        columns=[text("col_field", language), text("col_value", language)],
    )


def candidates_table(line, language: str, *, masked: bool = False) -> pd.DataFrame:
    """Return the shown candidates, numbered from 0 as the actions use them."""
    rows = []
    for number, candidate in enumerate((line.suggestion or {}).get("candidates", [])):
        reasons = "; ".join(candidate.get("reasons", []))
        if masked:
            reasons = mask_text(reasons, names=[line.counterparty_name])
        rows.append(
            [
                str(number),
                candidate.get("kind", ""),
                candidate.get("customer_id") or "",
                ", ".join(
                    f"{oid} {amount}" for oid, amount in candidate.get("orders", [])
                ),
                candidate.get("balance", ""),
                ", ".join(
                    f"{oid} {amount}" for oid, amount in candidate.get("fees", [])
                ),
                f"{candidate.get('score', 0.0):.3f}",
                reasons,
            ]
        )
    columns = [
        text(key, language)
        for key in (
            "col_number",
            "col_kind",
            "col_customer",
            "col_orders",
            "col_balance",
            "col_fees",
            "col_score",
            "col_reasons",
        )
    ]
    return pd.DataFrame(rows, columns=columns)


def _orders_table(orders, language: str) -> pd.DataFrame:
    rows = [
        [
            o.order_id,
            o.order_date.isoformat(),
            f"{o.amount:.2f}",
            f"{o.open_amount:.2f}",
            o.status,
        ]
        for o in orders
    ]
    columns = [
        text(key, language)
        for key in (
            "col_order",
            "col_order_date",
            "col_amount",
            "col_open",
            "col_status",
        )
    ]
    return pd.DataFrame(rows, columns=columns)


def _balance_text(customer, balance: Decimal, masked: bool = False) -> str:
    if customer is None:
        return "-"
    name = mask_name(customer.name) if masked else customer.name
    return f"{customer.customer_id} {name}: {balance:.2f}"


def _earlier_table(lines, language: str, masked: bool = False) -> pd.DataFrame:
    rows = [
        [
            line.line_ref,
            line.booking_date.isoformat(),
            f"{line.amount:.2f}",
            _payer_fields(line, masked)["memo"],
            line.status,
            line.customer_id or "",
        ]
        for line in lines
    ]
    columns = [
        text(key, language)
        for key in (
            "col_line_ref",
            "col_date",
            "col_amount",
            "col_memo",
            "col_status",
            "col_customer",
        )
    ]
    return pd.DataFrame(rows, columns=columns)


# Decisions ---------------------------------------------------------------------


def parse_split(value: str, customer_id: str, language: str) -> tuple[Part, ...]:
    """Read split rows: `ORDER AMOUNT`, `balance AMOUNT` or `fee ORDER AMOUNT`.

    Raises ValueError naming the row that cannot be read.
    """
    customer_id = customer_id.strip()
    parts = []
    for number, row in enumerate(value.splitlines(), start=1):
        words = row.replace(",", " ").split()
        if not words:
            continue
        try:
            parts.append(_split_part(words, customer_id))
        except (ValueError, IndexError, ArithmeticError):
            raise ValueError(
                text("bad_split", language, row=number, text=row)
            ) from None
    return tuple(parts)


def _split_part(words: list[str], customer_id: str) -> Part:
    if words[0].lower() == "balance" and len(words) == 2:
        return Part("balance", to_money(words[1]), customer_id)
    if words[0].lower() == "fee" and len(words) == 3:
        return Part("fee", to_money(words[2]), customer_id, words[1])
    if len(words) == 2:
        return Part("order", to_money(words[1]), customer_id, words[0])
    raise ValueError(" ".join(words))


def decide(
    engine: Engine,
    clerk: Clerk,
    task_id: int,
    decision: ReviewDecision,
    *,
    version: int | None,
    language: str,
) -> str:
    """Carry out a decision and return the message for the clerk."""
    try:
        with session_scope(engine) as session:
            outcome = review.decide(
                session, task_id, decision, actor=clerk.name, expected_version=version
            )
            status = outcome.line.status
    except (AllocationConflict, review.ReviewConflict) as exc:
        _record_rejection(engine, clerk, task_id, decision.action, exc)
        return text("error", language, error=str(exc))
    except CashmatchError as exc:
        log.warning(
            "review task %s: %s by %s failed: %s",
            task_id,
            decision.action,
            clerk.name,
            exc,
        )
        return text("error", language, error=str(exc))
    return text(
        "decided",
        language,
        task=task_id,
        action=text(_ACTION_KEYS[decision.action], language),
        status=status,
    )


_ACTION_KEYS = {
    "accept": "accept",
    "choose": "choose",
    "split": "split",
    "balance": "to_balance",
    "not_customer": "not_customer",
    "refund": "refund",
}


def _record_rejection(
    engine: Engine, clerk: Clerk, task_id: int, action: str, exc: Exception
) -> None:
    log.warning(
        "review task %s: %s by %s rejected: %s", task_id, action, clerk.name, exc
    )
    with session_scope(engine) as session:
        task = session.get(ReviewTask, task_id)
        review.record_rejection(
            session,
            actor=clerk.name,
            line_id=task.line_id if task else None,
            action=action,
            reason=str(exc),
        )


def undo(
    engine: Engine, clerk: Clerk, line_id: int, note: str, language: str
) -> tuple[str, int | None]:
    """Reverse what was decided on a line; return a message and the new task."""
    reason = note.strip() or "undone on the review page"
    try:
        with session_scope(engine) as session:
            outcome = review.reverse_line(
                session, line_id, actor=clerk.name, reason=reason, expected_version=None
            )
            line_ref = outcome.line.line_ref
            task_id = outcome.task.id
    except CashmatchError as exc:
        log.warning("undo of line %s by %s failed: %s", line_id, clerk.name, exc)
        return text("error", language, error=str(exc)), None
    return text("undone", language, line_ref=line_ref, task=task_id), task_id


def audit_table(
    engine: Engine, clerk: Clerk | None, language: str
) -> tuple[pd.DataFrame, str]:
    """Return the newest audit events for an admin, else an empty table."""
    columns = [
        text(key, language)
        for key in (
            "col_at",
            "col_actor",
            "col_action",
            "col_entity",
            "col_task",
            "col_detail",
        )
    ]
    if clerk is None or not allows(clerk.role, "admin"):
        return pd.DataFrame([], columns=columns), text("admins_only", language)
    with Session(engine) as session:
        events = review.audit_log(session, limit=300)
        rows = [
            [
                event.at.strftime("%Y-%m-%d %H:%M:%S"),
                event.actor,
                event.action,
                event.entity,
                event.entity_id,
                json.dumps(event.detail or {}, ensure_ascii=False),
            ]
            for event in events
        ]
    return pd.DataFrame(rows, columns=columns), ""
