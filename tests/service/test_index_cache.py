"""The cached matcher index follows the database between requests."""

import time
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlmodel import select

from ingest.records import CustomerRecord, OrderRecord
from models.db import session_scope
from models.money import to_cents
from models.tables import StatementLine
from service import booking, master
from service import index as index_module
from service.booking import Part
from service.index import IndexCache, load_index
from service.matching import match_lines
from service.serving import current_model
from service.settings import Settings


@pytest.fixture
def settings(database_url, tmp_path, cold_start_dir) -> Settings:
    return Settings(
        database_url=database_url, data_dir=tmp_path, cold_start_dir=cold_start_dir
    )


def _order(order_id: str, amount: str, day: str = "2025-06-01") -> OrderRecord:
    return OrderRecord(
        order_id=order_id,
        customer_id="C1",
        order_date=date.fromisoformat(day),
        amount=Decimal(amount),
        open_amount=Decimal(amount),
    )


def _seed(engine, *orders: OrderRecord) -> None:
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [CustomerRecord("C1", "恒达机械有限公司", bank_accounts=("6222001",))],
        )
        master.upsert_orders(session, list(orders))


def _add_line(engine, ref: str, amount: str, memo: str, day: str = "2025-06-10"):
    with session_scope(engine) as session:
        line = StatementLine(
            account="default",
            line_ref=ref,
            dedupe_key=f"k-{ref}",
            booking_date=date.fromisoformat(day),
            amount=Decimal(amount),
            memo=memo,
            counterparty_name="恒达机械有限公司",
            counterparty_account="6222001",
        )
        session.add(line)
        session.flush()
        return line.id


def _open(cache, engine, settings, order_id) -> int | None:
    with session_scope(engine) as session:
        with cache.use(session, settings) as index:
            order = index.orders.get(order_id)
            return None if order is None else order.open


def test_cache_follows_bookings_and_reversals(engine, settings):
    _seed(engine, _order("SO-1", "730.00"))
    cache = IndexCache()
    assert _open(cache, engine, settings, "SO-1") == to_cents(Decimal("730.00"))
    line_id = _add_line(engine, "L1", "730.00", "SO-1")

    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.confirm(
            session, line, [Part("order", Decimal("730.00"), "C1", "SO-1")], actor="t"
        )
    assert _open(cache, engine, settings, "SO-1") is None

    with session_scope(engine) as session:
        booking.reverse(
            session, session.get(StatementLine, line_id), actor="t", reason="x"
        )
    assert _open(cache, engine, settings, "SO-1") == to_cents(Decimal("730.00"))


def test_cache_sees_new_orders(engine, settings):
    _seed(engine, _order("SO-1", "100.00"))
    cache = IndexCache()
    assert _open(cache, engine, settings, "SO-2") is None

    with session_scope(engine) as session:
        master.upsert_orders(session, [_order("SO-2", "250.00")])

    assert _open(cache, engine, settings, "SO-2") == to_cents(Decimal("250.00"))


def test_cache_sees_change_committed_after_later_syncs(engine, settings, monkeypatch):
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite a session that writes keeps every other one out")
    # Without a margin, only the open transaction keeps the sync reading
    # from before its change was stamped.
    monkeypatch.setattr(index_module, "CLOCK_MARGIN", timedelta(0))
    _seed(engine, _order("SO-1", "730.00"))
    cache = IndexCache()
    assert _open(cache, engine, settings, "SO-1") == 73_000

    with session_scope(engine) as writer:
        master.upsert_orders(
            writer, [replace(_order("SO-1", "730.00"), open_amount=Decimal("500.00"))]
        )
        writer.flush()
        for _ in range(2):
            time.sleep(0.05)
            assert _open(cache, engine, settings, "SO-1") == 73_000

    assert _open(cache, engine, settings, "SO-1") == 50_000


def test_sync_window_without_open_transactions(engine):
    with session_scope(engine) as session:
        read_again = index_module._read_again(session)
    if engine.dialect.name == "postgresql":
        assert read_again < index_module.CLOCK_MARGIN + timedelta(seconds=1)
    else:
        assert read_again == index_module.SYNC_OVERLAP


def test_cache_learns_confirmed_payer_account(engine, settings):
    _seed(engine, _order("SO-1", "500.00"))
    cache = IndexCache()
    _open(cache, engine, settings, "SO-1")
    line_id = _add_line(engine, "L1", "500.00", "SO-1")
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        line.counterparty_account = "9999888877776666"
        booking.confirm(
            session, line, [Part("order", Decimal("500.00"), "C1", "SO-1")], actor="t"
        )

    with session_scope(engine) as session:
        with cache.use(session, settings) as index:
            assert index.customers_by_account("9999888877776666") == {"C1": 1}


def test_batch_never_pays_order_twice(engine, settings):
    _seed(engine, _order("SO-1", "730.00"))
    cache = IndexCache()
    first = _add_line(engine, "L1", "730.00", "SO-1")
    second = _add_line(engine, "L2", "730.00", "SO-1", day="2025-06-11")

    with session_scope(engine) as session:
        lines = [session.get(StatementLine, first), session.get(StatementLine, second)]
        model = current_model(session, settings)
        outcomes = match_lines(session, lines, model, settings, index_cache=cache)

    booked = [o.result.chosen.order_ids for o in outcomes]
    assert booked[0] == ("SO-1",)
    assert booked[1] != ("SO-1",)
    assert _open(cache, engine, settings, "SO-1") is None


def test_dry_run_leaves_cache_unchanged(engine, settings):
    _seed(engine, _order("SO-1", "730.00"))
    cache = IndexCache()
    line_id = _add_line(engine, "L1", "730.00", "SO-1")

    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        model = current_model(session, settings)
        match_lines(session, [line], model, settings, dry_run=True, index_cache=cache)
        session.rollback()

    assert _open(cache, engine, settings, "SO-1") == to_cents(Decimal("730.00"))
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        [outcome] = match_lines(
            session,
            [line],
            current_model(session, settings),
            settings,
            index_cache=cache,
        )
    assert "duplicate" not in outcome.result.anomaly_reasons


def test_repeat_payment_in_later_request_is_duplicate(engine, settings):
    _seed(engine, _order("SO-1", "730.00"), _order("SO-2", "730.00", "2025-06-02"))
    cache = IndexCache()
    first = _add_line(engine, "L1", "730.00", "货款")
    with session_scope(engine) as session:
        model = current_model(session, settings)
        match_lines(
            session,
            [session.get(StatementLine, first)],
            model,
            settings,
            index_cache=cache,
        )
    second = _add_line(engine, "L2", "730.00", "货款", day="2025-06-12")

    with session_scope(engine) as session:
        [outcome] = match_lines(
            session,
            [session.get(StatementLine, second)],
            model,
            settings,
            index_cache=cache,
        )

    assert "duplicate" in outcome.result.anomaly_reasons
    with session_scope(engine) as session:
        stored = session.exec(
            select(StatementLine).where(StatementLine.id == second)
        ).one()
        assert stored.decision != "auto"


def test_cache_learns_memo_habit_and_prepayment_balance(engine, settings):
    _seed(engine, _order("SO-1", "500.00"))
    cache = IndexCache()
    _open(cache, engine, settings, "SO-1")
    line_id = _add_line(engine, "L1", "5000.00", "预付款", day="2025-06-12")
    with session_scope(engine) as session:
        line = session.get(StatementLine, line_id)
        booking.confirm(
            session, line, [Part("balance", Decimal("5000.00"), "C1", None)], actor="t"
        )

    with session_scope(engine) as session:
        with cache.use(session, settings) as index:
            assert index.balances["C1"] == 500_000
            assert index.balance_since["C1"] == date(2025, 6, 12)
            assert index.memo_stats.shapes["balance"] == 1
        rebuilt = load_index(session, settings)
    assert rebuilt.balances["C1"] == 500_000
    assert rebuilt.memo_stats.shapes == index.memo_stats.shapes


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "rebuilt"])
def test_old_unused_balance_is_flagged(engine, settings, cached):
    _seed(engine, _order("SO-1", "500.00"))
    advance = _add_line(engine, "L1", "5000.00", "预付款", day="2025-03-01")
    with session_scope(engine) as session:
        line = session.get(StatementLine, advance)
        booking.confirm(
            session, line, [Part("balance", Decimal("5000.00"), "C1", None)], actor="t"
        )
    payment = _add_line(engine, "L2", "500.00", "SO-1", day="2025-06-10")

    with session_scope(engine) as session:
        line = session.get(StatementLine, payment)
        [outcome] = match_lines(
            session,
            [line],
            current_model(session, settings),
            settings,
            index_cache=IndexCache() if cached else None,
        )

    assert outcome.result.chosen.order_ids == ("SO-1",)
    assert "unused_balance" in outcome.result.anomaly_reasons
