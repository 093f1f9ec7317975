"""Storing the ERP's master data: customers, orders and invoices.

The ERP owns orders. It sends each order's open amount as of its export;
Cashmatch keeps that as the base and subtracts what it confirmed after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, select

from features.text import normalize_account
from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord
from models.errors import CashmatchError
from models.money import ZERO
from models.tables import (
    Allocation,
    Customer,
    CustomerAccount,
    CustomerAlias,
    Invoice,
    SalesOrder,
    utcnow,
)

log = logging.getLogger("cashmatch.service")

ORDER_STATUSES = ("open", "partly_paid", "paid", "closed", "cancelled")
BOOKED_TARGETS = ("order", "fee")


class UnknownCustomer(CashmatchError):
    """An order or invoice names a customer that was never loaded."""


@dataclass
class LoadReport:
    """How many master-data rows were created and updated."""

    created: int = 0
    updated: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated"


def upsert_customers(session: Session, records: Iterable[CustomerRecord]) -> LoadReport:
    """Create or update customers with their master aliases and accounts."""
    report = LoadReport()
    for record in records:
        customer = session.get(Customer, record.customer_id)
        if customer is None:
            customer = Customer(customer_id=record.customer_id, name=record.name)
            report.created += 1
        else:
            customer.name = record.name
            customer.updated_at = utcnow()
            report.updated += 1
        session.add(customer)
        session.flush()
        _replace_master_aliases(session, record)
        _add_master_accounts(session, record)
    log.info("loaded customers: %s", report)
    return report


def _replace_master_aliases(session: Session, record: CustomerRecord) -> None:
    existing = session.exec(
        select(CustomerAlias).where(CustomerAlias.customer_id == record.customer_id)
    ).all()
    known = {alias.alias: alias for alias in existing}
    wanted = {alias.strip() for alias in record.aliases if alias.strip()}
    for alias in existing:
        if alias.source == "master" and alias.alias not in wanted:
            session.delete(alias)
    for alias in wanted - known.keys():
        session.add(CustomerAlias(customer_id=record.customer_id, alias=alias))


def _add_master_accounts(session: Session, record: CustomerRecord) -> None:
    existing = session.exec(
        select(CustomerAccount).where(CustomerAccount.customer_id == record.customer_id)
    ).all()
    known = {account.account_number: account for account in existing}
    for raw in record.bank_accounts:
        number = normalize_account(raw)
        if not number:
            continue
        account = known.get(number)
        if account is None:
            session.add(
                CustomerAccount(customer_id=record.customer_id, account_number=number)
            )
        elif account.source != "master":
            account.source = "master"
            session.add(account)


def upsert_orders(
    session: Session,
    records: Iterable[OrderRecord],
    *,
    as_of: datetime | None = None,
) -> LoadReport:
    """Create or update orders; `as_of` is when the ERP took its open amounts.

    Allocations that Cashmatch confirmed after `as_of` are taken off the
    ERP's open amount, because the ERP could not have known them yet.
    """
    as_of = as_of or utcnow()
    records = list(records)
    report = LoadReport()
    known_customers = set(session.exec(select(Customer.customer_id)).all())
    existing = _orders_by_id(session, [record.order_id for record in records])
    booked = _booked_since(session, list(existing), as_of)
    for record in records:
        if record.customer_id not in known_customers:
            raise UnknownCustomer(
                f"order {record.order_id} names customer {record.customer_id!r}, "
                "which is not loaded; load customers.csv first"
            )
        order = existing.get(record.order_id)
        if order is None:
            order = SalesOrder(
                order_id=record.order_id,
                customer_id=record.customer_id,
                order_date=record.order_date,
                amount=record.amount,
                erp_open_amount=record.open_amount,
                open_amount=record.open_amount,
            )
            existing[record.order_id] = order
            report.created += 1
        else:
            order.version += 1
            report.updated += 1
        _apply_order_record(order, record, as_of, booked.get(record.order_id, ZERO))
        session.add(order)
    session.flush()
    log.info("loaded orders: %s", report)
    return report


def _orders_by_id(session: Session, order_ids: list[str]) -> dict[str, SalesOrder]:
    found: dict[str, SalesOrder] = {}
    for start in range(0, len(order_ids), 500):
        chunk = order_ids[start : start + 500]
        query = select(SalesOrder).where(SalesOrder.order_id.in_(chunk))
        found.update((order.order_id, order) for order in session.exec(query).all())
    return found


def _apply_order_record(
    order: SalesOrder, record: OrderRecord, as_of: datetime, booked: Decimal
) -> None:
    order.customer_id = record.customer_id
    order.order_date = record.order_date
    order.amount = record.amount
    order.currency = record.currency
    order.deposit_amount = record.deposit_amount
    order.erp_open_amount = record.open_amount
    order.erp_as_of = as_of
    order.updated_at = utcnow()
    order.open_amount = max(record.open_amount - booked, ZERO)
    order.status = order_status(record.status.lower(), order)


def _booked_since(
    session: Session, order_ids: list[str], since: datetime
) -> dict[str, Decimal]:
    """Return what confirmed allocations took off each order after `since`."""
    found: dict[str, Decimal] = {}
    for start in range(0, len(order_ids), 500):
        query = (
            select(Allocation.order_id, func.sum(Allocation.amount))
            .where(
                Allocation.order_id.in_(order_ids[start : start + 500]),
                Allocation.status == "confirmed",
                Allocation.target.in_(BOOKED_TARGETS),
                Allocation.confirmed_at > since,
            )
            .group_by(Allocation.order_id)
        )
        found.update(session.exec(query).all())
    return found


def order_status(erp_status: str, order: SalesOrder) -> str:
    """Return the order's status after Cashmatch's own bookings."""
    if erp_status in ("closed", "cancelled"):
        return erp_status
    if order.open_amount == 0:
        return "paid"
    if order.open_amount < order.amount:
        return "partly_paid"
    return "open"


def upsert_invoices(session: Session, records: Iterable[InvoiceRecord]) -> LoadReport:
    """Create or update invoices; each names the orders it bills."""
    report = LoadReport()
    for record in records:
        customer_id = _invoice_customer(session, record)
        invoice = session.get(Invoice, record.invoice_id)
        if invoice is None:
            invoice = Invoice(invoice_id=record.invoice_id, amount=record.amount)
            report.created += 1
        else:
            report.updated += 1
        invoice.customer_id = customer_id
        invoice.amount = record.amount
        invoice.issue_date = record.issue_date
        invoice.order_ids = list(record.order_ids)
        session.add(invoice)
    session.flush()
    log.info("loaded invoices: %s", report)
    return report


def _invoice_customer(session: Session, record: InvoiceRecord) -> str | None:
    for order_id in record.order_ids:
        order = session.get(SalesOrder, order_id)
        if order is not None:
            return order.customer_id
    return None
