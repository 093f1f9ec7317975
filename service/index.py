"""Building the matcher's in-memory index from the database."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, text
from sqlmodel import Session, select

from ingest.records import CustomerRecord, InvoiceRecord, OrderRecord, StatementRecord
from matcher.index import MatchIndex, MatchSettings, OpenOrder
from models.money import ZERO, to_cents
from models.tables import (
    Allocation,
    Customer,
    CustomerAccount,
    CustomerAlias,
    Invoice,
    LedgerEntry,
    SalesOrder,
    StatementLine,
    utcnow,
)
from service.ledger import balance_layers
from service.settings import Settings

OPEN_STATUSES = ("open", "partly_paid")
# How far the clocks of two processes that stamp `updated_at` may differ.
CLOCK_MARGIN = timedelta(seconds=2)
# NOTE: SQLite cannot list other connections' open transactions, so a sync
# there reads again everything changed in this last stretch of time.
SYNC_OVERLAP = timedelta(seconds=30)

# The age of the oldest transaction that another session of this role has
# open on this database. Only the service's own role writes its tables,
# and PostgreSQL shows a role the state of its own sessions without monitoring
# rights.
_OPEN_TRANSACTIONS = text(
    """
    SELECT EXTRACT(EPOCH FROM clock_timestamp() - min(xact_start))
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND usename = current_user
      AND backend_type = 'client backend'
      AND pid <> pg_backend_pid()
      AND state <> 'idle'
    """
)

log = logging.getLogger("cashmatch.service")


def match_settings(settings: Settings) -> MatchSettings:
    """Return the matcher's tolerances from the service settings."""
    return MatchSettings(
        fee_max=settings.fee_max,
        fee_rate=settings.fee_rate,
        target_precision=settings.target_precision,
        unused_balance_days=settings.unused_balance_days,
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
    _learn_dismissed_memos(session, index)
    _sync_balances(session, index)
    return index


def customer_records(
    session: Session, customer_ids: Collection[str] | None = None
) -> list[CustomerRecord]:
    """Return the matcher's view of every customer, or of `customer_ids` only."""
    aliases: dict[str, list[str]] = defaultdict(list)
    accounts: dict[str, list[str]] = defaultdict(list)
    alias_query = select(CustomerAlias)
    account_query = select(CustomerAccount).where(CustomerAccount.source == "master")
    customer_query = select(Customer)
    if customer_ids is not None:
        wanted = sorted(customer_ids)
        alias_query = alias_query.where(CustomerAlias.customer_id.in_(wanted))
        account_query = account_query.where(CustomerAccount.customer_id.in_(wanted))
        customer_query = customer_query.where(Customer.customer_id.in_(wanted))
    for alias in session.exec(alias_query).all():
        aliases[alias.customer_id].append(alias.alias)
    for account in session.exec(account_query).all():
        accounts[account.customer_id].append(account.account_number)
    return [
        CustomerRecord(
            customer_id=customer.customer_id,
            name=customer.name,
            aliases=tuple(aliases[customer.customer_id]),
            bank_accounts=tuple(accounts[customer.customer_id]),
        )
        for customer in session.exec(customer_query).all()
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


@dataclass
class _ConfirmedLine:
    """The payer, memo and targets of a line with confirmed allocations."""

    name: str
    account: str
    amount: Decimal
    memo: str
    customer_id: str
    targets: set[str] = field(default_factory=set)
    order_ids: set[str] = field(default_factory=set)


def _learn_confirmed_payers(
    session: Session, index: MatchIndex, *, after_id: int = 0
) -> int:
    """Teach the index the payers and memo habits of confirmed lines.

    Only allocations with an id above `after_id` count; returns the highest
    id seen, so a later call can teach just what was confirmed since.
    """
    query = (
        select(
            Allocation.id,
            StatementLine.id,
            StatementLine.counterparty_name,
            StatementLine.counterparty_account,
            StatementLine.amount,
            StatementLine.memo,
            Allocation.customer_id,
            Allocation.target,
            Allocation.order_id,
        )
        .join(Allocation, Allocation.line_id == StatementLine.id)
        .where(
            Allocation.status == "confirmed",
            Allocation.customer_id.is_not(None),
            Allocation.id > after_id,
        )
    )
    lines: dict[int, _ConfirmedLine] = {}
    last_id = after_id
    for row in session.exec(query).all():
        (
            allocation_id,
            line_id,
            name,
            account,
            amount,
            memo,
            customer_id,
            target,
            order_id,
        ) = row
        last_id = max(last_id, allocation_id)
        known = lines.setdefault(
            line_id, _ConfirmedLine(name, account, amount, memo or "", customer_id)
        )
        known.targets.add(target)
        if order_id:
            known.order_ids.add(order_id)

    still_open = _still_open(
        session, {o for line in lines.values() for o in line.order_ids}
    )
    for line in lines.values():
        index.learn_payer(
            customer_id=line.customer_id,
            name=line.name,
            account=line.account,
            amount=line.amount,
        )
        if line.targets == {"balance"}:
            index.advances[line.customer_id] += 1
        if line.amount > 0:
            index.learn_memo(line.memo, _confirmed_shape(line, still_open))
    return last_id


def _confirmed_shape(line: _ConfirmedLine, still_open: set[str]) -> str:
    """Return the allocation shape of a confirmed line, as the memo statistics count it.

    Whether an order was paid in part is judged by what is open on it now,
    which a later payment may have closed. The shape only feeds a habit
    statistic, so this approximation is enough.
    """
    if not line.order_ids:
        return "balance"
    if "balance" in line.targets:
        return "overpay"
    if line.order_ids & still_open:
        return "part"
    return "order"


def _still_open(session: Session, order_ids: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(order_ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        query = select(SalesOrder.order_id).where(
            SalesOrder.order_id.in_(chunk),
            SalesOrder.status.in_(OPEN_STATUSES),
            SalesOrder.open_amount > 0,
        )
        found.update(session.exec(query).all())
    return found


def _sync_balances(session: Session, index: MatchIndex, *, after_id: int = 0) -> int:
    """Set the prepayment balances of customers with ledger entries above `after_id`.

    The balance and the day its oldest unused money arrived come from the
    ledger, so the matcher's balance features and the unused-balance note
    agree with the ledger. Returns the highest entry id seen.
    """
    query = select(LedgerEntry.customer_id, LedgerEntry.id).where(
        LedgerEntry.id > after_id
    )
    changed: set[str] = set()
    last_id = after_id
    for customer_id, entry_id in session.exec(query).all():
        changed.add(customer_id)
        last_id = max(last_id, entry_id)
    if not changed:
        return last_id
    layers = balance_layers(session, None if after_id == 0 else sorted(changed))
    for customer_id in changed:
        stack = layers.get(customer_id, [])
        index.balances[customer_id] = to_cents(
            sum((layer.amount for layer in stack), ZERO)
        )
        index.balance_since.pop(customer_id, None)
        if stack and stack[0].amount > 0:
            index.balance_since[customer_id] = stack[0].day
    return last_id


def _learn_dismissed_memos(session: Session, index: MatchIndex) -> None:
    """Teach the memo statistics the incoming lines a clerk marked as not a customer's."""
    query = select(StatementLine.memo).where(
        StatementLine.status == "not_customer", StatementLine.amount > 0
    )
    for memo in session.exec(query).all():
        index.learn_memo(memo or "", "none")


@dataclass
class _CachedIndex:
    index: MatchIndex
    settings: MatchSettings
    read_since: datetime
    last_allocation_id: int
    last_entry_id: int
    invoice_count: int


class IndexCache:
    """One index per database, kept in step with it instead of rebuilt.

    Building the index reads every customer and open order, which takes
    seconds at 100,000 orders; a request that matches one line cannot pay
    that. `use` brings the cached index up to date with what changed since
    the last request (orders and customers by `updated_at`, allocations by
    id, invoices by count) and lends it to one caller at a time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _CachedIndex] = {}

    @contextmanager
    def use(self, session: Session, settings: Settings) -> Iterator[MatchIndex]:
        """Yield the up-to-date index; the caller must leave it as it found it."""
        key = session.get_bind().url.render_as_string(hide_password=False)
        wanted = match_settings(settings)
        # Begin the transaction before taking the lock: on SQLite that takes
        # the write lock. Taken the other way round, a caller holding our
        # lock would wait for a writer that waits for our lock.
        session.connection()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.settings != wanted:
                entry = _build_cached(session, settings)
                self._entries[key] = entry
            else:
                _sync(session, entry)
            yield entry.index


def _build_cached(session: Session, settings: Settings) -> _CachedIndex:
    read_since = utcnow() - _read_again(session)
    index = MatchIndex.build(
        customer_records(session),
        open_order_records(session),
        invoice_records(session),
        settings=match_settings(settings),
    )
    last_id = _learn_confirmed_payers(session, index)
    # NOTE: lines dismissed after the build teach the cached index nothing
    # until the next build; confirmed allocations are synced by id.
    _learn_dismissed_memos(session, index)
    last_entry = _sync_balances(session, index)
    log.info(
        "index built: %d customers, %d open orders",
        len(index.customers),
        len(index.orders),
    )
    return _CachedIndex(
        index=index,
        settings=index.settings,
        read_since=read_since,
        last_allocation_id=last_id,
        last_entry_id=last_entry,
        invoice_count=_invoice_count(session),
    )


def _sync(session: Session, entry: _CachedIndex) -> None:
    read_since = utcnow() - _read_again(session)
    index = entry.index
    _sync_customers(session, index, entry.read_since)
    _sync_orders(session, index, entry.read_since)
    count = _invoice_count(session)
    if count != entry.invoice_count:
        for invoice in invoice_records(session):
            index.add_invoice(invoice)
        entry.invoice_count = count
    entry.last_allocation_id = _learn_confirmed_payers(
        session, index, after_id=entry.last_allocation_id
    )
    entry.last_entry_id = _sync_balances(session, index, after_id=entry.last_entry_id)
    entry.read_since = read_since


def _read_again(session: Session) -> timedelta:
    """Return how far before now the next sync must start reading.

    A change stamped before this sync may still be uncommitted, so the
    next sync reads from before the oldest transaction open now. Reading a
    change twice is safe, because every change is applied as a value, not
    as a difference.
    """
    if session.get_bind().dialect.name != "postgresql":
        return SYNC_OVERLAP
    oldest_age = session.connection().execute(_OPEN_TRANSACTIONS).scalar()
    return CLOCK_MARGIN + timedelta(seconds=float(oldest_age or 0))


def _sync_customers(session: Session, index: MatchIndex, since: datetime) -> None:
    changed = set(
        session.exec(select(Customer.customer_id).where(Customer.updated_at >= since))
    )
    if not changed:
        return
    for record in customer_records(session, changed):
        index.add_customer(record)


_ORDER_COLUMNS = (
    SalesOrder.order_id,
    SalesOrder.customer_id,
    SalesOrder.order_date,
    SalesOrder.amount,
    SalesOrder.open_amount,
    SalesOrder.currency,
    SalesOrder.deposit_amount,
    SalesOrder.status,
)


def _sync_orders(session: Session, index: MatchIndex, since: datetime) -> None:
    """Apply the orders changed since `since`; unchanged ones cost a comparison."""
    query = select(*_ORDER_COLUMNS).where(SalesOrder.updated_at >= since)
    for row in session.exec(query).all():
        order = OrderRecord(*row)
        is_open = order.status in OPEN_STATUSES and order.open_amount > 0
        state = index.orders.get(order.order_id)
        if not is_open:
            index.remove_order(order.order_id)
        elif state is None or _order_changed(state, order):
            index.add_order(order)
        elif state.open != to_cents(order.open_amount):
            index.set_open(order.order_id, to_cents(order.open_amount))


def _order_changed(state: OpenOrder, order: OrderRecord) -> bool:
    """Tell whether an order changed beyond its open amount."""
    deposit = order.deposit_amount
    return (
        state.customer_id != order.customer_id
        or state.order_date != order.order_date
        or state.amount != to_cents(order.amount)
        or state.currency != order.currency
        or state.deposit != (to_cents(deposit) if deposit and deposit > 0 else None)
    )


def _invoice_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Invoice)).one()


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
