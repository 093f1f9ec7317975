"""Routes for master data from the ERP, balances and invoice checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.api import operations, schemas
from service.api.deps import (
    Caller,
    Idempotency,
    SessionDep,
    SettingsDep,
    idempotent_write,
    require,
)
from service.masking import mask_customer_fields, masked_for

router = APIRouter(prefix="/v1", tags=["master data"])

Reader = Annotated[Caller, Depends(require("read"))]
SyncWrite = Annotated[Idempotency, Depends(idempotent_write("sync"))]


@router.put("/customers", response_model=schemas.UpsertReport)
def upsert_customers(
    body: schemas.CustomersUpsert, session: SessionDep, write: SyncWrite
) -> schemas.UpsertReport:
    """Create or update customers with their aliases and bank accounts."""
    return write.finish(operations.upsert_customers(session, body))


@router.get("/customers/{customer_id}", response_model=schemas.CustomerPublic)
def get_customer(
    customer_id: str, session: SessionDep, caller: Reader
) -> schemas.CustomerPublic:
    """Return a customer with its prepayment balance."""
    customer = operations.customer_public(session, customer_id)
    return masked_for(caller.role, customer, mask_customer_fields)


@router.get("/customers/{customer_id}/ledger", response_model=schemas.BalancePublic)
def get_ledger(
    customer_id: str, session: SessionDep, caller: Reader
) -> schemas.BalancePublic:
    """Return a customer's prepayment balance and its ledger entries."""
    return operations.ledger(session, customer_id)


@router.put("/orders", response_model=schemas.UpsertReport)
def upsert_orders(
    body: schemas.OrdersUpsert, session: SessionDep, write: SyncWrite
) -> schemas.UpsertReport:
    """Create or update orders; a cancelled order releases what was paid."""
    return write.finish(operations.upsert_orders(session, body, actor=write.actor))


@router.get("/orders/{order_id}", response_model=schemas.OrderPublic)
def get_order(
    order_id: str, session: SessionDep, caller: Reader
) -> schemas.OrderPublic:
    """Return an order with its open amount after Cashmatch's bookings."""
    return operations.order_public(session, order_id)


@router.put("/invoices", response_model=schemas.UpsertReport)
def upsert_invoices(
    body: schemas.InvoicesUpsert,
    session: SessionDep,
    settings: SettingsDep,
    write: SyncWrite,
) -> schemas.UpsertReport:
    """Create or update invoices; each comes back checked against payments."""
    report = operations.upsert_invoices(
        session, body, actor=write.actor, policy=settings.invoice_policy
    )
    return write.finish(report)


@router.get("/invoices/{invoice_id}/check", response_model=schemas.InvoiceCheck)
def check_invoice(
    invoice_id: str, session: SessionDep, caller: Reader
) -> schemas.InvoiceCheck:
    """Compare an invoice with what its customer paid and prepaid."""
    return operations.invoice_check(session, invoice_id)
