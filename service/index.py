"""Building the matcher's in-memory index from the database."""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import Session, select

from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord, StatementRecord
from matcher.index import MatchIndex, MatchSettings
from models.tables import (
    Allocation,
    Customer,
    CustomerAccount,
    CustomerAlias,
    Invoice,
    SalesOrder,
    StatementLine,
)
from service.settings import Settings

OPEN_STATUSES = ("open", "partly_paid")


def match_settings(settings: Settings) -> MatchSettings:
    """Return the matcher's tolerances from the service settings."""
    return MatchSettings(
        fee_max=settings.fee_max,
        fee_rate=settings.fee_rate,
        target_precision=settings.target_precision,
    )


def load_index(session: Session, settings: Settings) -> MatchIndex:
    """Index every customer, every open order and what confirmed lines taught."""
    index = MatchIndex.build(
        customer_records(session),
        open_order_records(session),
        invoice_records(session),
        settings=match_settings(settings),
    )
    _learn_confirmed_payers(session, index)
    return index


def customer_records(session: Session) -> list[CustomerRecord]:
    aliases: dict[str, list[str]] = defaultdict(list)
    for alias in session.exec(select(CustomerAlias)).all():
        aliases[alias.customer_id].append(alias.alias)
    accounts: dict[str, list[str]] = defaultdict(list)
    master = select(CustomerAccount).where(CustomerAccount.source == "master")
    for account in session.exec(master).all():
        accounts[account.customer_id].append(account.account_number)
    return [
        CustomerRecord(
            customer_id=customer.customer_id,
            name=customer.name,
            aliases=tuple(aliases[customer.customer_id]),
            bank_accounts=tuple(accounts[customer.customer_id]),
        )
        for customer in session.exec(select(Customer)).all()
    ]


def open_order_records(session: Session) -> list[OrderRecord]:
    query = select(SalesOrder).where(
        SalesOrder.status.in_(OPEN_STATUSES), SalesOrder.open_amount > 0
    )
    return [order_record(order) for order in session.exec(query).all()]


def order_record(order: SalesOrder) -> OrderRecord:
    """Return the matcher's view of a stored order."""
    return OrderRecord(
        order_id=order.order_id,
        customer_id=order.customer_id,
        order_date=order.order_date,
        amount=order.amount,
        open_amount=order.open_amount,
        currency=order.currency,
        deposit_amount=order.deposit_amount,
        status=order.status,
    )


def invoice_records(session: Session) -> list[InvoiceRecord]:
    return [
        InvoiceRecord(
            invoice_id=invoice.invoice_id,
            order_ids=tuple(invoice.order_ids or ()),
            amount=invoice.amount,
            issue_date=invoice.issue_date,
        )
        for invoice in session.exec(select(Invoice)).all()
    ]


def _learn_confirmed_payers(session: Session, index: MatchIndex) -> None:
    """Teach the index every payer of a line with a confirmed allocation."""
    query = (
        select(
            StatementLine.id,
            StatementLine.counterparty_name,
            StatementLine.counterparty_account,
            Allocation.customer_id,
            Allocation.target,
        )
        .join(Allocation, Allocation.line_id == StatementLine.id)
        .where(Allocation.status == "confirmed", Allocation.customer_id.is_not(None))
    )
    lines: dict[int, tuple[str, str, str, set[str]]] = {}
    for line_id, name, account, customer_id, target in session.exec(query).all():
        known = lines.setdefault(line_id, (name, account, customer_id, set()))
        known[3].add(target)
    for name, account, customer_id, targets in lines.values():
        index.learn_payer(customer_id=customer_id, name=name, account=account)
        if targets == {"balance"}:
            index.advances[customer_id] += 1


def statement_record(line: StatementLine) -> StatementRecord:
    """Return the matcher's view of a stored statement line."""
    return StatementRecord(
        line_ref=line.line_ref,
        booking_date=line.booking_date,
        amount=line.amount,
        currency=line.currency,
        counterparty_name=line.counterparty_name,
        counterparty_account=line.counterparty_account,
        memo=line.memo,
        bank_reference=line.bank_reference,
        value_date=line.value_date,
        channel=line.channel,
        transaction_type=line.transaction_type,
        is_reversal=line.is_reversal,
        unknown_type=line.unknown_type,
        source_line=line.source_line,
    )
