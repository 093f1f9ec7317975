"""Service steps behind the routes: store, match, load and report.

The routes parse a request, call one function here or in `service.review`,
and return its result. The API's own rules live here. Lines posted to
`/v1/match` are stored once per account and line_ref. An order that the ERP
cancels releases its payments to the customer's prepayment balance. An
invoice is checked against what its customer paid.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ingest.records import (
    CustomerRecord,
    InvoiceRecord,
    OrderRecord,
    ParsedStatement,
    StatementRecord,
)
from models.tables import (
    Allocation,
    BankAccount,
    Customer,
    CustomerAccount,
    CustomerAlias,
    SalesOrder,
    StatementLine,
)
from service import ledger as ledger_service
from service import master, review
from service.api import schemas
from service.api.errors import ApiError
from service.booking import Part, balance_of
from service.imports import import_bytes, lines_for_keys, store_statements
from service.index import IndexCache
from service.matching import LineOutcome, match_lines
from service.results import line_rows, rows_of_line
from service.serving import current_model
from service.settings import Settings

log = logging.getLogger("cashmatch.service")

STORE_ATTEMPTS = 3


# Matching posted lines -----------------------------------------------------------


def match_posted_lines(
    session: Session,
    request: schemas.MatchRequest,
    settings: Settings,
    *,
    actor: str,
    index_cache: IndexCache | None = None,
) -> schemas.MatchResponse:
    """Store new lines, match what was never matched and return every line.

    A line whose account and line_ref are stored already is not stored
    again and keeps its earlier result, so a resent request books nothing
    twice. With `dry_run` nothing is stored and every line is only scored.
    """
    keyed = _keyed_lines(request.lines, settings)
    model = current_model(session, settings)
    if request.dry_run:
        return _dry_run(session, keyed, settings, model, index_cache)

    stored = _store_posted(session, keyed, settings, actor)
    fresh = [line for line in stored.values() if line.status == "new"]
    outcomes = match_lines(
        session, fresh, model, settings, actor=actor, index_cache=index_cache
    )
    reasons = {outcome.line.id: outcome.reasons for outcome in outcomes}
    fresh_ids = set(reasons)
    matched = [
        _matched_line(
            session, stored[key], reasons, already=stored[key].id not in fresh_ids
        )
        for key in keyed
    ]
    return schemas.MatchResponse(
        model_version=model.version, dry_run=False, lines=matched
    )


def _keyed_lines(
    lines: list[schemas.LineCreate], settings: Settings
) -> dict[tuple[str, str], schemas.LineCreate]:
    keyed: dict[tuple[str, str], schemas.LineCreate] = {}
    for line in lines:
        key = (line.account or settings.default_account, line.line_ref)
        if key in keyed:
            raise ApiError(
                422,
                "duplicate_line_ref",
                f"line_ref {key[1]!r} appears twice for account {key[0]!r}; "
                "each line needs its own line_ref",
            )
        keyed[key] = line
    return keyed


def _store_posted(
    session: Session,
    keyed: dict[tuple[str, str], schemas.LineCreate],
    settings: Settings,
    actor: str,
) -> dict[tuple[str, str], StatementLine]:
    for attempt in range(1, STORE_ATTEMPTS + 1):
        found = _stored_by_ref(session, list(keyed))
        missing = {key: line for key, line in keyed.items() if key not in found}
        if not missing:
            break
        try:
            with session.begin_nested():
                found |= _store_new(session, missing, settings, actor)
            break
        except IntegrityError:
            # A concurrent request stored some of these lines first. They
            # are committed and visible now, so the next pass reads them.
            if attempt == STORE_ATTEMPTS:
                raise
            log.info("lines of a posted batch were stored concurrently; reading them")
    for key, line in keyed.items():
        _check_same_line(found[key], line)
    return found


def _stored_by_ref(
    session: Session, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], StatementLine]:
    refs_by_account: dict[str, list[str]] = defaultdict(list)
    for account, line_ref in keys:
        refs_by_account[account].append(line_ref)
    found: dict[tuple[str, str], StatementLine] = {}
    for account, refs in refs_by_account.items():
        for start in range(0, len(refs), 500):
            query = (
                select(StatementLine)
                .where(
                    StatementLine.account == account,
                    StatementLine.line_ref.in_(refs[start : start + 500]),
                )
                .order_by(StatementLine.id)
            )
            for line in session.exec(query).all():
                found.setdefault((account, line.line_ref), line)
    return found


def _store_new(
    session: Session,
    missing: dict[tuple[str, str], schemas.LineCreate],
    settings: Settings,
    actor: str,
) -> dict[tuple[str, str], StatementLine]:
    """Store the missing lines and return them by account and line_ref.

    A line whose de-duplication key is stored already under another
    line_ref (the same bank transaction) maps to that stored line.
    """
    by_account: dict[str, list[tuple[tuple[str, str], StatementRecord]]] = defaultdict(
        list
    )
    for key, line in missing.items():
        currency = line.currency or _account_currency(session, key[0], settings)
        by_account[key[0]].append((key, _record(line, currency)))
    statements = [
        ParsedStatement(
            file_name="api",
            format="api",
            lines=[record for _, record in pairs],
            account=account,
            currency=pairs[0][1].currency,
        )
        for account, pairs in by_account.items()
    ]
    report = store_statements(
        session,
        statements,
        settings,
        file_name="POST /v1/match",
        file_sha256=_digest(missing),
        actor=actor,
    )
    keys = [key for pairs in by_account.values() for key, _ in pairs]
    return dict(zip(keys, lines_for_keys(session, report.line_keys), strict=True))


def _record(line: schemas.LineCreate, currency: str) -> StatementRecord:
    # The line_ref is the API client's id for the transaction, so it serves
    # as the bank id of the de-duplication key.
    return StatementRecord(
        line_ref=line.line_ref,
        booking_date=line.booking_date,
        value_date=line.value_date,
        amount=line.amount,
        currency=currency,
        counterparty_name=line.counterparty_name,
        counterparty_account=line.counterparty_account,
        memo=line.memo,
        bank_reference=line.bank_reference,
        channel=line.channel,
        bank_id=line.line_ref,
    )


def _account_currency(session: Session, account: str, settings: Settings) -> str:
    row = session.get(BankAccount, account)
    return row.currency if row else settings.default_currency


def _digest(missing: dict[tuple[str, str], schemas.LineCreate]) -> str:
    text = json.dumps(
        [
            [key[0], key[1], line.model_dump(mode="json")]
            for key, line in missing.items()
        ],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _check_same_line(stored: StatementLine, posted: schemas.LineCreate) -> None:
    if stored.amount == posted.amount and stored.booking_date == posted.booking_date:
        return
    raise ApiError(
        409,
        "line_ref_conflict",
        f"line_ref {stored.line_ref!r} of account {stored.account!r} is stored "
        f"with amount {stored.amount} on {stored.booking_date}, not "
        f"{posted.amount} on {posted.booking_date}; send a new line_ref for a "
        "new transaction",
    )


def _matched_line(
    session: Session,
    line: StatementLine,
    reasons: dict[int, list[str]],
    *,
    already: bool,
) -> schemas.MatchedLine:
    line_reasons = reasons.get(line.id) or list(
        (line.suggestion or {}).get("reasons", [])
    )
    return schemas.MatchedLine(
        line_id=line.id,
        account=line.account,
        line_ref=line.line_ref,
        version=line.version,
        status=line.status,
        decision=line.decision or "",
        already_stored=already,
        reasons=line_reasons,
        allocations=allocation_rows(session, line),
    )


def _dry_run(session, keyed, settings, model, index_cache) -> schemas.MatchResponse:
    stored = _stored_by_ref(session, list(keyed))
    transient = [
        _transient_line(account, line, session, settings)
        for (account, _), line in keyed.items()
    ]
    outcomes: list[LineOutcome] = match_lines(
        session, transient, model, settings, dry_run=True, index_cache=index_cache
    )
    lines = [
        schemas.MatchedLine(
            line_id=None,
            account=key[0],
            line_ref=key[1],
            version=None,
            status="new",
            decision=outcome.decision,
            already_stored=key in stored,
            reasons=outcome.reasons,
            allocations=[_row(row) for row in _with_decision(outcome)],
        )
        for key, outcome in zip(keyed, outcomes, strict=True)
    ]
    return schemas.MatchResponse(model_version=model.version, dry_run=True, lines=lines)


def _transient_line(
    account: str, line: schemas.LineCreate, session: Session, settings: Settings
) -> StatementLine:
    """Return a line object that is matched but never added to the session."""
    return StatementLine(
        account=account,
        line_ref=line.line_ref,
        dedupe_key="",
        booking_date=line.booking_date,
        value_date=line.value_date,
        amount=line.amount,
        currency=line.currency or _account_currency(session, account, settings),
        counterparty_name=line.counterparty_name,
        counterparty_account=line.counterparty_account,
        memo=line.memo,
        bank_reference=line.bank_reference,
        channel=line.channel,
    )


def _with_decision(outcome: LineOutcome) -> list[dict]:
    rows = outcome.result.rows()
    for row in rows:
        row["decision"] = outcome.decision
    return rows


def allocation_rows(
    session: Session, line: StatementLine
) -> list[schemas.AllocationRow]:
    """Return a stored line's rows of the allocations output."""
    return [_row(row) for row in line_rows(session, [line])]


def _row(row: dict) -> schemas.AllocationRow:
    return schemas.AllocationRow.model_validate(row)


# Uploaded statement files --------------------------------------------------------


def import_upload(
    session: Session,
    data: bytes,
    settings: Settings,
    *,
    file_name: str,
    account: str | None,
    profile: str | None,
    skip_bad_lines: bool,
    accept_unbalanced: bool,
    match: bool,
    actor: str,
    currency: str | None = None,
    time_zone: str | None = None,
    index_cache: IndexCache | None = None,
) -> schemas.ImportPublic:
    """Store an uploaded statement file and, with `match`, match its new lines."""
    report = import_bytes(
        session,
        data,
        settings,
        file_name=file_name,
        account=account,
        profile=profile,
        currency=currency,
        time_zone=time_zone,
        skip_bad_lines=skip_bad_lines,
        accept_unbalanced=accept_unbalanced,
        actor=actor,
    )
    decisions: Counter[str] = Counter()
    if match:
        lines = lines_for_keys(session, report.line_keys)
        fresh = [line for line in lines if line.status == "new"]
        model = current_model(session, settings)
        outcomes = match_lines(
            session, fresh, model, settings, actor=actor, index_cache=index_cache
        )
        for outcome in outcomes:
            decisions[outcome.decision] += 1
    return schemas.ImportPublic(
        file_name=file_name,
        batch_ids=report.batch_ids,
        lines_total=report.lines_total,
        lines_new=report.lines_new,
        lines_already_imported=report.lines_already_imported,
        lines_rejected=report.lines_rejected,
        skipped=[str(problem) for problem in report.skipped],
        notes=list(report.notes),
        decisions=dict(decisions),
        summary=report.summary(),
    )


# Master data ----------------------------------------------------------------------


def upsert_customers(
    session: Session, body: schemas.CustomersUpsert
) -> schemas.UpsertReport:
    """Create or update customers with their aliases and bank accounts."""
    records = [
        CustomerRecord(
            customer_id=c.customer_id,
            name=c.name,
            aliases=tuple(c.aliases),
            bank_accounts=tuple(c.bank_accounts),
        )
        for c in body.customers
    ]
    report = master.upsert_customers(session, records)
    return schemas.UpsertReport(created=report.created, updated=report.updated)


def upsert_orders(
    session: Session, body: schemas.OrdersUpsert, *, actor: str
) -> schemas.UpsertReport:
    """Create or update orders; a cancelled order releases what was paid."""
    records = [
        OrderRecord(
            order_id=o.order_id,
            customer_id=o.customer_id,
            order_date=o.order_date,
            amount=o.amount,
            open_amount=o.open_amount,
            currency=o.currency,
            deposit_amount=o.deposit_amount,
            status=o.status,
        )
        for o in body.orders
    ]
    report = master.upsert_orders(session, records, as_of=body.as_of, actor=actor)
    session.flush()
    return schemas.UpsertReport(
        created=report.created,
        updated=report.updated,
        released=[_released_row(session, a) for a in report.released],
    )


def _released_row(session: Session, allocation: Allocation) -> schemas.AllocationRow:
    line = session.get(StatementLine, allocation.line_id)
    return _row(rows_of_line(line, [allocation])[0])


def upsert_invoices(
    session: Session,
    body: schemas.InvoicesUpsert,
    *,
    actor: str,
    policy: str,
) -> schemas.UpsertReport:
    """Create or update invoices and check each against what was paid.

    An invoice beyond what its customer paid is rejected or flagged, as
    CASHMATCH_INVOICE_POLICY says.
    """
    records = [
        InvoiceRecord(
            invoice_id=i.invoice_id,
            order_ids=tuple(i.order_ids),
            amount=i.amount,
            issue_date=i.issue_date,
        )
        for i in body.invoices
    ]
    report = master.upsert_invoices(session, records)
    checks = ledger_service.check_new_invoices(
        session,
        [record.invoice_id for record in records],
        policy=policy,
        actor=actor,
    )
    return schemas.UpsertReport(
        created=report.created,
        updated=report.updated,
        invoice_checks=[_invoice_check_public(check) for check in checks],
    )


def customer_public(session: Session, customer_id: str) -> schemas.CustomerPublic:
    """Return a stored customer with aliases, accounts and balance."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise ApiError(
            404, "customer_not_found", f"customer {customer_id!r} does not exist"
        )
    aliases = session.exec(
        select(CustomerAlias.alias).where(CustomerAlias.customer_id == customer_id)
    ).all()
    accounts = session.exec(
        select(CustomerAccount.account_number).where(
            CustomerAccount.customer_id == customer_id
        )
    ).all()
    return schemas.CustomerPublic(
        customer_id=customer.customer_id,
        name=customer.name,
        aliases=sorted(aliases),
        bank_accounts=sorted(accounts),
        balance=balance_of(session, customer_id),
    )


def order_public(session: Session, order_id: str) -> schemas.OrderPublic:
    """Return a stored order or raise 404."""
    order = session.get(SalesOrder, order_id)
    if order is None:
        raise ApiError(404, "order_not_found", f"order {order_id!r} does not exist")
    return schemas.OrderPublic.model_validate(order)


# Invoices, balances and the feed ------------------------------------------------


def invoice_check(session: Session, invoice_id: str) -> schemas.InvoiceCheck:
    """Compare an invoice with what its orders were paid plus the balance."""
    return _invoice_check_public(ledger_service.check_invoice(session, invoice_id))


def _invoice_check_public(check: ledger_service.InvoiceCheck) -> schemas.InvoiceCheck:
    return schemas.InvoiceCheck(
        invoice_id=check.invoice_id,
        customer_id=check.customer_id,
        amount=check.amount,
        paid_to_orders=check.paid_to_orders,
        prepayment_balance=check.prepayment_balance,
        covered=check.covered,
        shortfall=check.shortfall,
    )


def ledger(session: Session, customer_id: str) -> schemas.BalancePublic:
    """Return a customer's prepayment balance and ledger, oldest entry first."""
    view = ledger_service.customer_ledger(session, customer_id)
    return schemas.BalancePublic(
        customer_id=view.customer_id,
        balance=view.balance,
        entries=[schemas.LedgerEntryPublic.model_validate(e) for e in view.entries],
    )


def feed(
    session: Session, *, cursor: int, limit: int, settle_seconds: float
) -> schemas.FeedPage:
    """Return allocations booked and reversed after `cursor`, oldest first."""
    events, next_cursor = ledger_service.feed_events(
        session, cursor=cursor, limit=limit, settle_seconds=settle_seconds
    )
    return schemas.FeedPage(
        events=[schemas.FeedEvent(**event) for event in events],
        next_cursor=next_cursor,
    )


# Review tasks ----------------------------------------------------------------------


def task_public(task, line: StatementLine) -> schemas.TaskPublic:
    """Return a task with its line and shown candidates."""
    return schemas.TaskPublic(
        id=task.id,
        status=task.status,
        reason=task.reason,
        priority=task.priority,
        claimed_by=task.claimed_by,
        claim_expires_at=task.claim_expires_at,
        version=task.version,
        flagged=review.is_flagged(line),
        line=schemas.LinePublic.model_validate(line),
        candidates=list((line.suggestion or {}).get("candidates", [])),
    )


def line_result(
    session: Session, outcome: review.DecisionOutcome
) -> schemas.LineResult:
    """Return a line after a decision or correction, with its rows."""
    session.flush()
    session.refresh(outcome.line)
    return schemas.LineResult(
        line=schemas.LinePublic.model_validate(outcome.line),
        allocations=allocation_rows(session, outcome.line),
        label_id=outcome.label.id if outcome.label else None,
        task_id=outcome.task.id if outcome.task else None,
    )


def parts_of(allocations: list[schemas.AllocationCreate] | None) -> list[Part] | None:
    """Return booking parts from request allocations."""
    if allocations is None:
        return None
    return [Part(a.target, a.amount, a.customer_id, a.order_id) for a in allocations]
